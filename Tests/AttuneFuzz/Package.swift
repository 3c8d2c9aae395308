// swift-tools-version:6.0
import PackageDescription

// libFuzzer harnesses for the parsers of user files: one executable per
// parser, each defining only `LLVMFuzzerTestOneInput` (libFuzzer supplies
// `main`). They are built with `-sanitize=fuzzer,address` and so live apart
// from the root package, whose normal build must not need those flags.
// See Docs/FUZZING.md for the commands.
let package = Package(
    name: "AttuneFuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "Attune", path: "../..")],
    targets: [
        .target(name: "FuzzSupport"),
        .executableTarget(name: "FuzzSafeTensors", dependencies: ["FuzzSupport", .product(name: "AttuneModels", package: "Attune")]),
        .executableTarget(name: "FuzzNpy", dependencies: ["FuzzSupport", .product(name: "AttuneTensor", package: "Attune")]),
        .executableTarget(name: "FuzzTextFormat", dependencies: ["FuzzSupport", .product(name: "AttuneIR", package: "Attune")]),
        .executableTarget(name: "FuzzTokenizer", dependencies: ["FuzzSupport", .product(name: "AttuneText", package: "Attune")]),
        .executableTarget(name: "FuzzHFConfig", dependencies: ["FuzzSupport", .product(name: "AttuneModels", package: "Attune")]),
        .executableTarget(name: "FuzzChatTemplate", dependencies: ["FuzzSupport", .product(name: "AttuneText", package: "Attune")]),
    ]
)
