// swift-tools-version: 6.1
import Foundation
import PackageDescription

let package = Package(
    name: "Sightline",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sightline", targets: ["sightline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // Only what the server needs: no swift-configuration support.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // C libraries enter through these three targets and nowhere else.
        .systemLibrary(name: "CFFmpeg", path: "Sources/CFFmpeg"),
        .systemLibrary(name: "CV4L2", path: "Sources/CV4L2"),
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),

        .target(name: "Capture", dependencies: ["CFFmpeg", "CV4L2"]),
        .target(name: "FrameRing", dependencies: ["Capture"]),
        .target(name: "Detector", dependencies: ["CDNNL", "Capture"]),
        .target(name: "Sink", dependencies: ["Detector"]),
        .target(name: "Tracking", dependencies: ["Detector", "Sink"]),
        .target(name: "Annotate", dependencies: ["CFFmpeg", "Capture", "Detector"]),
        .target(name: "HTTP", dependencies: [
            "Annotate", "Capture", "Detector", "Sink", "Tracking",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Daemon", dependencies: [
            "Capture", "FrameRing", "Detector", "Sink", "Tracking", "HTTP",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "sightline", dependencies: [
            "Daemon", "Detector", "Capture", "Sink", "Tracking", "Annotate",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CaptureTests", dependencies: ["Capture", "TestSupport"]),
        .testTarget(name: "DetectorTests", dependencies: ["Detector", "Capture", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "FrameRingTests", dependencies: ["FrameRing", "Capture"]),
        .testTarget(name: "AnnotateTests", dependencies: ["Annotate", "Capture", "Detector"]),
        .testTarget(name: "SinkTests", dependencies: ["Sink", "Detector"]),
        .testTarget(name: "TrackingTests", dependencies: ["Tracking", "Detector"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "Detector", "Sink", "Tracking", "HTTP", "TestSupport"]),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", "Capture", "Detector", "Sink", "TestSupport"]),
        .testTarget(name: "SightlineTests", dependencies: ["TestSupport"]),
    ]
)

// libFuzzer harnesses (fuzz/README.md): only with SIGHTLINE_FUZZ set, as scripts/fuzz.sh builds them
// (`--sanitize fuzzer --sanitize address`, their own scratch path), never in the normal build.
if ProcessInfo.processInfo.environment["SIGHTLINE_FUZZ"] != nil {
    for (name, module) in [("FuzzModel", "Detector"), ("FuzzLabels", "Detector"), ("FuzzSidecar", "Detector"), ("FuzzConfig", "Daemon")] {
        package.targets.append(.executableTarget(name: name, dependencies: [.target(name: module)], path: "fuzz/Sources/\(name)",
                                                 swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    }
}
