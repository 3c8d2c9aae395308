import ArgumentParser
import AttuneCodegen
import AttuneIR
import AttuneKernels
import AttuneRuntime

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show the IR after any pass, the kernel of each attention node, what did not fuse, and the C.",
        discussion: "Without flags: the pass summary, patterns that did not fuse and why, and the final IR."
    )

    @Argument(help: "Hugging Face model folder or .attn file.") var model: String
    @Option(help: "Print the IR after this pass (see the summary for names; 'import' for the imported graph).") var after: String?
    @Flag(help: "The kernel bound to each attention node and why.") var kernels = false
    @Flag(name: .customLong("c"), help: "The generated C.") var c = false
    @OptionGroup var compile: CompileOptionsGroup

    func run() throws {
        let loaded = try ModelSource.load(model)
        let options = try compile.options()
        let report = try ModelCompiler.lower(loaded, options)
        if let after {
            if after == "import" { print(TextFormat.print(report.input), terminator: ""); return }
            guard let g = report.graph(after: after) else {
                throw CLIError("no pass named '\(after)'; passes: import, \(report.steps.map(\.pass).joined(separator: ", "))")
            }
            print(TextFormat.print(g), terminator: "")
            return
        }
        if kernels {
            let g = report.output
            for (i, node) in g.nodes.enumerated() {
                guard case .attention(let a) = node.op else { continue }
                func describe(_ b: KernelBinding) -> String {
                    "\(b.kernel)\(b.parameters.isEmpty ? "" : " " + describeParameters(b.parameters, separator: ","))  (\(b.reason))"
                }
                let binding = a.binding.map(describe) ?? "unbound"
                print("%\(i) \(node.label ?? "attention"): \(binding)\(a.decodeBinding.map { "; decode: " + describe($0) } ?? "")")
            }
            return
        }
        if c {
            let module = try CEmitter.emit(report.output, weights: loaded.weights, options: try ModelCompiler.codegenOptions(loaded, options))
            print(module.source, terminator: "")
            return
        }
        print(report.summary)
        let unfused = report.unfused
        if !unfused.isEmpty {
            print("did not fuse:")
            for u in unfused { print("  \(u)") }
        }
        print("")
        print(TextFormat.print(report.output), terminator: "")
    }
}
