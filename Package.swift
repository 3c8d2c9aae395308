// swift-tools-version:6.0
import PackageDescription
import Foundation

// Debian's libomp-dev installs omp.h and libomp.so under LLVM's own folders
// (/usr/lib/llvm-N/...), which the Swift toolchain's clang does not search.
// We look for them here so `swift build` works with no extra flags; set
// ATTUNE_OMP_INCLUDE / ATTUNE_OMP_LIB to override. Without libomp the kernels
// still build and run, single-threaded (see Docs/BUILDING.md).
func findOpenMP() -> (include: String, lib: String)? {
    let env = ProcessInfo.processInfo.environment
    if let inc = env["ATTUNE_OMP_INCLUDE"], let lib = env["ATTUNE_OMP_LIB"] {
        return (inc, lib)
    }
    let fm = FileManager.default
    let llvmRoots = ((try? fm.contentsOfDirectory(atPath: "/usr/lib")) ?? [])
        .filter { $0.hasPrefix("llvm-") }
        .sorted { (Int($0.dropFirst(5)) ?? 0) > (Int($1.dropFirst(5)) ?? 0) }
    for root in llvmRoots {
        let libDir = "/usr/lib/\(root)/lib"
        guard fm.fileExists(atPath: "\(libDir)/libomp.so") else { continue }
        let candidates = ["/usr/lib/\(root)/include"] +
            ((try? fm.contentsOfDirectory(atPath: "\(libDir)/clang")) ?? []).sorted().reversed()
                .map { "\(libDir)/clang/\($0)/include" }
        if let inc = candidates.first(where: { fm.fileExists(atPath: "\($0)/omp.h") }) {
            return (inc, libDir)
        }
    }
    return nil
}

let openMP = findOpenMP()
let kernelCFlags: [String] = ["-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno"]
    + (openMP.map { ["-fopenmp", "-I\($0.include)"] } ?? [])
let kernelLinkFlags: [String] = openMP.map { ["-L\($0.lib)", "-Xlinker", "-rpath", "-Xlinker", $0.lib, "-lomp"] } ?? []

// The float64 references and the check's eager runs are loops over arrays: unoptimised
// (debug) Swift runs them ~10× slower, which made `attune check` and its tests most of CI.
// Only these modules are optimised in debug builds; the rest stays debuggable.
let optimisedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "Attune",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "attune", targets: ["attune"]),
        .library(name: "AttuneKernels", targets: ["AttuneKernels"]),
        // The parsers of user files, for the fuzz harnesses in Tests/Fuzz.
        .library(name: "AttuneTensor", targets: ["AttuneTensor"]),
        .library(name: "AttuneIR", targets: ["AttuneIR"]),
        .library(name: "AttuneModels", targets: ["AttuneModels"]),
        .library(name: "AttuneText", targets: ["AttuneText"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // The C kernel library: one ABI header, one file per kernel family.
        .target(
            name: "CAttuneKernels",
            path: "Kernels",
            // The compiled models' runtime needs the graph a generated module describes;
            // it is built with each model (Toolchain), never into this library.
            exclude: ["model_runtime.c"],
            cSettings: [.unsafeFlags(kernelCFlags)],
            linkerSettings: [.linkedLibrary("openblas"), .linkedLibrary("m"), .unsafeFlags(kernelLinkFlags)]
        ),
        .target(name: "AttuneTensor"),
        .target(name: "AttuneIR"),
        .target(name: "AttuneModels", dependencies: ["AttuneIR", "AttuneTensor"]),
        .target(name: "AttunePasses", dependencies: ["AttuneIR", "AttuneKernels"]),
        .target(name: "AttuneCodegen", dependencies: ["AttuneIR", "AttunePasses", "AttuneKernels"]),
        .target(name: "AttuneRuntime", dependencies: ["AttuneIR", "AttunePasses", "AttuneCodegen", "AttuneModels", "AttuneTensor", "AttuneNumerics", "AttuneKernels"],
                plugins: ["EmbedKernelsPlugin"]),
        // Kernels/ embedded into AttuneRuntime at build time, so an installed binary needs
        // no source tree (see Docs/BUILDING.md).
        .executableTarget(name: "EmbedKernels"),
        .plugin(name: "EmbedKernelsPlugin", capability: .buildTool(), dependencies: ["EmbedKernels"]),
        .target(name: "AttuneKernels", dependencies: ["CAttuneKernels", "AttuneTensor"]),
        .target(name: "AttuneNumerics", dependencies: ["AttuneIR"], swiftSettings: optimisedInDebug),
        // Text: tokenizers (tokenizer.json), chat templates, sampling. The runtime never sees text.
        .target(name: "AttuneText", dependencies: ["AttuneModels", "AttuneTensor"]),
        .target(name: "AttuneTune", dependencies: ["AttuneCodegen", "AttuneKernels", "AttuneNumerics", "AttuneBench", "AttuneRuntime", "AttunePasses",
                                                  .product(name: "GRDB", package: "GRDB.swift")]),
        .target(name: "AttuneCheck", dependencies: ["AttuneCodegen", "AttuneKernels", "AttuneNumerics", "AttuneBench", "AttuneRuntime", "AttunePasses", "AttuneTensor", "AttuneText", "CAttuneKernels"],
                swiftSettings: optimisedInDebug),
        .target(name: "AttuneBench", dependencies: ["AttuneKernels", "AttuneTensor", "AttuneNumerics", "CAttuneKernels"]),
        .executableTarget(
            name: "attune",
            dependencies: [
                "AttuneKernels", "AttuneTensor", "AttuneBench", "AttuneIR", "AttunePasses", "AttuneCodegen", "AttuneRuntime", "AttuneTune", "AttuneCheck", "AttuneText",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "AttuneTensorTests", dependencies: ["AttuneTensor"]),
        .testTarget(name: "AttuneNumericsTests", dependencies: ["AttuneNumerics", "AttuneIR"]),
        .testTarget(name: "AttuneIRTests", dependencies: ["AttuneIR"]),
        .testTarget(name: "AttunePassesTests", dependencies: ["AttunePasses", "AttuneKernels", "AttuneIR", "AttuneNumerics", "AttuneModels"]),
        .testTarget(name: "AttuneCodegenTests", dependencies: ["AttuneCodegen", "AttuneRuntime", "AttunePasses", "AttuneIR", "AttuneNumerics", "AttuneModels", "AttuneTensor", "CAttuneKernels"]),
        // Fixtures live in Tests/Fixtures and are found through #filePath.
        .testTarget(name: "AttuneModelsTests", dependencies: ["AttuneModels", "AttuneTensor"]),
        .testTarget(name: "AttuneKernelsTests", dependencies: ["AttuneKernels", "AttuneNumerics", "AttuneTensor", "AttuneBench"]),
        .testTarget(name: "AttuneEndToEndTests", dependencies: ["AttuneCheck", "AttuneRuntime", "AttuneNumerics", "AttuneModels", "AttuneTensor", "AttunePasses", "AttuneCodegen", "AttuneIR"]),
        .testTarget(name: "AttuneTuneTests", dependencies: ["AttuneTune", "AttuneCodegen", "AttuneKernels", "AttuneRuntime", "AttunePasses", "AttuneIR", "AttuneNumerics"]),
        .testTarget(name: "AttuneTextTests", dependencies: ["AttuneText"]),
        .testTarget(name: "attuneCLITests", dependencies: ["AttuneTensor"]),
    ]
)
