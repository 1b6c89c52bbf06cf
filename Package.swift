// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Ember",
    products: [
        .library(name: "Ember", targets: ["Ember"]),
        // Data-parallel training over Open MPI, kept apart so `import Ember` never needs MPI.
        .library(name: "EmberDistributed", targets: ["EmberDistributed"]),
        .executable(name: "ember", targets: ["EmberCLI"]),
        .executable(name: "ember-bench", targets: ["EmberBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenCL",
            path: "Sources/COpenCL",
            pkgConfig: "OpenCL",
            providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers", "libclblast-dev"])]
        ),
        .systemLibrary(
            name: "CBLAS",
            path: "Sources/CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .systemLibrary(
            name: "CMPI",
            path: "Sources/CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]
        ),
        // MPI's handles are C macros Swift cannot import; this shim returns them.
        .target(
            name: "CMPIShim",
            dependencies: ["CMPI"],
            path: "Sources/CMPIShim"
        ),
        .target(
            name: "EmberDistributed",
            dependencies: ["Ember", "CMPI", "CMPIShim"],
            path: "Sources/EmberDistributed",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .target(
            name: "CPUKernels",
            path: "Sources/CPUKernels"
        ),
        .target(
            name: "Ember",
            dependencies: ["COpenCL", "CBLAS", "CZlib", "CPUKernels"],
            path: "Sources/Ember",
            resources: [.process("Resources/Kernels"), .copy("Resources/Data")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // SVG charts shared by the two tools (training curves, benchmark bars).
        .target(
            name: "EmberPlot",
            path: "Sources/EmberPlot",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "EmberCLI",
            dependencies: ["Ember", "EmberDistributed", "EmberPlot", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/EmberCLI",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "EmberBench",
            dependencies: ["Ember", "EmberDistributed", "EmberPlot", "COpenCL", "CBLAS", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/EmberBench",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Makes one user mistake by name; the tests run its optimized build to check that every
        // message survives -O.
        .executableTarget(
            name: "EmberMisuse",
            dependencies: ["Ember"],
            path: "Tests/EmberMisuse",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Runs under mpirun (launched by DistributedTests): collectives, DDP parity, noSync,
        // the sampler and a failing rank, each checked on every rank.
        .executableTarget(
            name: "EmberDistributedChecks",
            dependencies: ["Ember", "EmberDistributed"],
            path: "Tests/EmberDistributedChecks",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "EmberTests",
            dependencies: ["Ember", "EmberDistributed", "EmberPlot", "CPUKernels", "CZlib"],
            path: "Tests/EmberTests",
            exclude: ["Fixtures"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)

// `make docs` (EMBER_DOCS=1) adds the DocC plugin; users of the library never resolve it.
if Context.environment["EMBER_DOCS"] == "1" {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"))
}
