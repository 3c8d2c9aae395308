import Foundation
import ArgumentParser
import AttuneKernels

@main
struct Attune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attune",
        abstract: "Compile transformer-decoder graphs for the CPU; run, benchmark and check attention kernels.",
        subcommands: [CompileCommand.self, RunCommand.self, CalibrateCommand.self, TuneCommand.self, CheckCommand.self, InspectCommand.self, KernelCommand.self, BenchCommand.self, TokenizeCommand.self]
    )
}

/// One line on stderr and a non-zero exit: what every user-input error becomes.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// A line the user should see that is not an error, on stderr so stdout stays parseable.
func printNote(_ note: String) {
    FileHandle.standardError.write(Data("note: \(note)\n".utf8))
}

/// `--param name=value`, repeatable; with `kernel`, values may be the names its
/// parameters give them (`precision=bf16`).
func parseParameters(_ items: [String], kernel: (any AttentionKernel)? = nil) throws -> KernelParameters {
    var out: KernelParameters = [:]
    for item in items {
        let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty,
              let value = Double(parts[1]) ?? kernel.flatMap({ try? $0.parameterValue(parts[0], parts[1]) }) else {
            throw CLIError("--param expects name=number\(kernel == nil ? "" : " (or a value name)"), got '\(item)'")
        }
        out[parts[0]] = value
    }
    return out
}

/// Shared help text listing the kernels, so a new kernel shows up without editing the CLI.
var kernelListHelp: String {
    "Available kernels:\n" + KernelRegistry.all.map { "  \($0.name) — \($0.summary)" }.joined(separator: "\n")
}
