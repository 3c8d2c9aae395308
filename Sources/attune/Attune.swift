import Foundation
import ArgumentParser
import AttuneKernels

@main
struct Attune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attune",
        abstract: "Compile transformer-decoder graphs for the CPU; run, benchmark and check attention kernels.",
        subcommands: [CompileCommand.self, RunCommand.self, CalibrateCommand.self, TuneCommand.self, ChatCommand.self, PerplexityCommand.self, CheckCommand.self, InspectCommand.self, KernelCommand.self, BenchCommand.self, TokenizeCommand.self]
    )

    /// ArgumentParser's `main`, with one error style: `error: <what>` on one line of stderr,
    /// exit 1 for a refused input or a failed run and 64 for a command line that does not
    /// parse (with a pointer to the command's --help instead of the whole usage text).
    /// Foundation's errors are reduced to their description (never a
    /// `NSCocoaErrorDomain` dump). --help and --version go to stdout with exit 0 as before.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            // A command that reported its outcome itself (check: regressions found).
            Foundation.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            let usage = code == .validationFailure
            FileHandle.standardError.write(Data(("error: " + errorLine(error, usage: usage) + "\n").utf8))
            Foundation.exit(usage ? ExitCode.validationFailure.rawValue : 1)
        }
    }

    /// One line naming the problem.
    static func errorLine(_ error: Error, usage: Bool) -> String {
        if usage {
            // "Usage: attune run <model> ..." names the command the user was typing.
            let words = fullMessage(for: error).split(separator: "\n").first { $0.hasPrefix("Usage: ") }?
                .split(separator: " ").dropFirst().prefix { !$0.hasPrefix("<") && !$0.hasPrefix("[") && !$0.hasPrefix("-") }
            let command = words.map { $0.joined(separator: " ") } ?? "attune"
            return oneLine(message(for: error)) + " (see '\(command) --help')"
        }
        let ns = error as NSError
        if ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain {
            let path = (ns.userInfo[NSFilePathErrorKey] as? String).map { "\($0): " } ?? ""
            return oneLine(path + ns.localizedDescription)
        }
        return oneLine("\(error)")
    }

    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "; ")
    }
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
