// swift-tools-version: 6.1
// Plinth: an ML platform in one native daemon. See docs/architecture.md for the layout.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// `strict` plus no run-time exclusivity checks in release builds, for the
/// targets on the online read and Predict paths only: PlinthStorage,
/// PlinthFeatures, PlinthServing, PlinthWire and PlinthServer; and for
/// plinth-bench, the client that shares the two cores with the server it
/// measures, so that its own checks are not charged to the server's
/// throughput (as they were in the benchmarks recorded before it lost the
/// flag). Never for PlinthInference, the library product others link,
/// whose checks stay on.
let hotPath: [SwiftSetting] = strict + [
    // Release builds skip Swift's run-time exclusivity checks in these
    // targets (debug builds, which every test runs, keep them): each access
    // to a class's stored property paid a thread-local access-set insert, and
    // on the online read path that was 14% of plinthd's instructions
    // (callgrind, 32 connections x 16 pipelined: 9,782 -> 8,435 per request;
    // one-entity Predict 33,002 -> 31,207). Compile-time checks are unchanged.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "Plinth",
    products: [
        .executable(name: "plinthd", targets: ["plinthd"]),
        .executable(name: "plinthctl", targets: ["plinthctl"]),
        .executable(name: "plinth-bench", targets: ["plinth-bench"]),
        .library(name: "PlinthInference", targets: ["PlinthInference"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    ],
    targets: [
        .systemLibrary(name: "CLMDB", path: "Sources/CLMDB", pkgConfig: "lmdb",
                       providers: [.apt(["liblmdb-dev"])]),
        .target(name: "PlinthStorage", dependencies: ["CLMDB", .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: hotPath),
        .target(name: "PlinthFeatures",
                dependencies: ["PlinthStorage", .product(name: "Yams", package: "Yams"), .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: hotPath),
        .target(name: "PlinthTracking", dependencies: ["PlinthStorage", .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: strict),
        .target(name: "PlinthRegistry", dependencies: ["PlinthStorage"], swiftSettings: strict),
        .target(name: "PlinthInference",
                dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: strict),
        .target(name: "PlinthServing",
                dependencies: ["PlinthFeatures", "PlinthInference", "PlinthRegistry", "PlinthStorage"],
                swiftSettings: hotPath),
        .target(name: "PlinthWire",
                dependencies: [
                    .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                    .product(name: "NIOCore", package: "swift-nio"),
                ],
                swiftSettings: hotPath),
        .target(name: "PlinthServer",
                dependencies: [
                    "PlinthWire", "PlinthFeatures", "PlinthStorage", "PlinthTracking", "PlinthRegistry",
                    "PlinthServing", "PlinthInference",
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOPosix", package: "swift-nio"),
                    .product(name: "NIOExtras", package: "swift-nio-extras"),
                    .product(name: "Logging", package: "swift-log"),
                    .product(name: "Yams", package: "Yams"),
                ],
                swiftSettings: hotPath),
        .target(name: "PlinthClient",
                dependencies: ["PlinthWire", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: strict),
        .executableTarget(name: "plinthd",
                          dependencies: [
                              "PlinthServer",
                              .product(name: "ArgumentParser", package: "swift-argument-parser"),
                              .product(name: "Logging", package: "swift-log"),
                          ],
                          swiftSettings: strict),
        .executableTarget(name: "plinthctl",
                          dependencies: [
                              "PlinthClient", "PlinthWire", "PlinthInference", "PlinthRegistry",
                              .product(name: "ArgumentParser", package: "swift-argument-parser"),
                          ],
                          swiftSettings: strict),
        .executableTarget(name: "plinth-bench",
                          dependencies: [
                              "PlinthClient", "PlinthWire", "PlinthInference",
                              .product(name: "ArgumentParser", package: "swift-argument-parser"),
                              .product(name: "Histogram", package: "hdrhistogram-swift"),
                          ],
                          swiftSettings: hotPath),
        .testTarget(name: "PlinthStorageTests", dependencies: ["PlinthStorage", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "PlinthFeaturesTests", dependencies: ["PlinthFeatures", "PlinthStorage"]),
        .testTarget(name: "PlinthTrackingTests", dependencies: ["PlinthTracking", "PlinthStorage", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "PlinthServingTests",
                    dependencies: ["PlinthServing", "PlinthFeatures", "PlinthInference", "PlinthRegistry", "PlinthStorage"]),
        .testTarget(name: "PlinthRegistryTests", dependencies: ["PlinthRegistry", "PlinthStorage"]),
        .testTarget(name: "PlinthWireTests",
                    dependencies: ["PlinthWire", .product(name: "NIOCore", package: "swift-nio"),
                                   .product(name: "NIOEmbedded", package: "swift-nio"),
                                   .product(name: "NIOTestUtils", package: "swift-nio")]),
        .testTarget(name: "PlinthServerTests",
                    dependencies: ["PlinthServer", "PlinthClient", "PlinthWire", "PlinthServing",
                                   .product(name: "Crypto", package: "swift-crypto"),
                                   .product(name: "NIOEmbedded", package: "swift-nio"),
                                   .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "PlinthInferenceTests", dependencies: ["PlinthInference"],
                    resources: [.copy("Fixtures")]),
    ]
)
