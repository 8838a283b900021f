// swift-tools-version: 6.1
// The Swift side of Benchmarks/inference: times PlinthInference on the same
// models and rows as the C and Python harnesses. PlinthInference's sources are
// linked in (Sources/PlinthInference is a symlink to the real target), so this
// package builds in release without resolving the daemon's dependencies.
import PackageDescription

let package = Package(
    name: "PlinthInferenceBench",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    ],
    targets: [
        .target(name: "PlinthInference",
                dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: [.enableUpcomingFeature("ExistentialAny"),
                                .enableUpcomingFeature("InternalImportsByDefault")]),
        .executableTarget(name: "plinth-inference-bench", dependencies: ["PlinthInference"]),
    ]
)
