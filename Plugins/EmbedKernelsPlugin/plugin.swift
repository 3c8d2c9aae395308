import Foundation
import PackagePlugin

/// Embeds Kernels/ into the target it is applied to (AttuneRuntime) as a generated Swift
/// file, through the EmbedKernels tool. The inputs are every file of Kernels/ and
/// Kernels/include plus the two folders themselves, so editing, adding or removing a
/// kernel file reruns the generator.
@main
struct EmbedKernelsPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let kernels = context.package.directoryURL.appending(path: "Kernels")
        let include = kernels.appending(path: "include")
        let fm = FileManager.default
        let inputs = try [kernels, include].flatMap { dir in
            try fm.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
                .filter { ["c", "h"].contains($0.pathExtension) }
        } + [kernels, include]
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedKernels.swift")
        return [.buildCommand(displayName: "Embedding the kernel sources into AttuneRuntime",
                              executable: try context.tool(named: "EmbedKernels").url,
                              arguments: [kernels.path, output.path],
                              inputFiles: inputs.sorted { $0.path < $1.path },
                              outputFiles: [output])]
    }
}
