import ArgumentParser
import AttuneCodegen
import AttuneRuntime
import Foundation

struct CompileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile",
        abstract: "Compile a model to C and a shared library.",
        discussion: """
        MODEL is a Hugging Face folder (config.json + model.safetensors or an index with shards; \
        Llama, Qwen2, Mistral, Qwen3, Phi-3) or an .attn graph (weights from the .safetensors file of the same name).
        --emit so (default) writes lib<name>.so, <name>.h, <name>.c and weights.manifest to OUT.
        --emit c writes a folder that builds without Swift: the C, the header, weights.manifest, \
        the kernel sources, a Makefile and a run-model.c driver (make && ./run 1 2 3).
        Weights are not copied: weights.manifest names the checkpoint's files by absolute path \
        and the module maps them when it opens (values derived at compile time, if any, go to \
        constants.bin beside it). Moving or changing the checkpoint needs a new compile.
        """
    )

    @Argument(help: "Hugging Face model folder or .attn file.") var model: String
    @Option(name: .shortAndLong, help: "Output folder.") var output: String
    @Option(help: "so or c.") var emit: String = "so"
    @OptionGroup var compile: CompileOptionsGroup

    func run() throws {
        guard emit == "so" || emit == "c" else { throw CLIError("--emit must be so or c, got '\(emit)'") }
        // Everything that can be refused is checked before OUT is created or touched.
        let options = try compile.options()
        try OutputPath.requireWritableFolder(output, option: "-o")
        let loaded = try ModelSource.load(model)
        let toolchain = try Toolchain.detect()
        let out = URL(fileURLWithPath: output)
        let start = Date()
        if emit == "c" {
            let (report, module) = try ModelCompiler.emit(loaded, options)
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            try StandaloneFolder.write(module, to: out, toolchain: toolchain, allowNonfinite: options.allowNonfinite)
            print(report.summary)
            print("wrote \(out.path): \(module.name).c, \(module.name).h, weights.manifest, kernels/, Makefile, run-model.c (\(fmt(Date().timeIntervalSince(start), 2)) s)")
            return
        }
        let artifacts = try ModelCompiler.compile(loaded, options, toolchain: toolchain)
        for note in artifacts.notes { printNote(note) }
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let name = artifacts.module.name
        let dest = out.appendingPathComponent("lib\(name).so")
        try? FileManager.default.removeItem(at: dest)
        try FileManager.default.copyItem(at: artifacts.library, to: dest)
        try WeightsManifest.write(artifacts.module, to: out, allowNonfinite: options.allowNonfinite, cacheDirectory: toolchain.cacheDirectory)
        try artifacts.module.source.write(to: out.appendingPathComponent("\(name).c"), atomically: true, encoding: .utf8)
        try artifacts.module.header.write(to: out.appendingPathComponent("\(name).h"), atomically: true, encoding: .utf8)
        // <name>.h includes the entry points every model shares: beside it, so OUT alone builds a caller.
        let shared = out.appendingPathComponent("attune_model.h")
        try? FileManager.default.removeItem(at: shared)
        try FileManager.default.copyItem(at: toolchain.kernelsDirectory.appendingPathComponent("include/attune_model.h"), to: shared)
        print(artifacts.report.summary)
        let plan = artifacts.module.memoryPlan
        print("arena \(plan.arenaFloats * 4 / 1024) KiB (\(plan.unsharedFloats * 4 / 1024) KiB without reuse), weights \(artifacts.module.constants.reduce(0) { $0 + $1.format.bytes(elements: $1.elements) } / 1024) KiB in \(artifacts.module.constants.count) slots")
        print("wrote \(out.path)/lib\(name).so (\(artifacts.cached ? "build cache hit" : "compiled with \(toolchain.compiler)"), \(fmt(artifacts.seconds, 2)) s)")
    }
}
