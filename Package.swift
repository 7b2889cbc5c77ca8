// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "kvmha-sidecar",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "kvmha", targets: ["kvmha"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.5.0"),
        // NIOCore and NIOHTTPTypes for the API's hot route (a handler in Hummingbird's channel pipeline); both
        // are already built for Hummingbird.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.20.0"),
        // HMAC-SHA256 of signed records; already built for HummingbirdTLS (swift-certificates).
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // C libraries: module maps and shims only.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .systemLibrary(name: "CLibNFS", pkgConfig: "libnfs", providers: [.apt(["libnfs-dev"])]),

        // Thin Swift wrappers; they know nothing of heartbeats.
        .target(name: "Libvirt", dependencies: ["CLibvirt"], swiftSettings: strict),
        .target(name: "NFS", dependencies: ["CLibNFS"], swiftSettings: strict),

        // Pure decisions: no I/O, imports nothing of ours (Crypto only for the records' HMAC).
        .target(
            name: "HeartbeatCore", dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),

        // The daemon: services and adapters.
        .target(
            name: "Sidecar",
            dependencies: [
                "HeartbeatCore", "Libvirt", "NFS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "kvmha",
            dependencies: [
                "Sidecar", "HeartbeatCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "kvmha-bench",
            dependencies: ["HeartbeatCore", "Sidecar"],
            path: "Benchmarks/BeatBenchmark",
            swiftSettings: strict
        ),

        .executableTarget(
            name: "kvmha-nfs-bench",
            dependencies: ["HeartbeatCore", "Sidecar", "NFS", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/NFSBenchmark",
            swiftSettings: strict
        ),

        .testTarget(name: "HeartbeatCoreTests", dependencies: ["HeartbeatCore"], swiftSettings: strict),
        .testTarget(name: "LibvirtTests", dependencies: ["Libvirt"], swiftSettings: strict),
        .testTarget(name: "NFSTests", dependencies: ["NFS"], swiftSettings: strict),
        .testTarget(
            name: "SidecarTests",
            dependencies: [
                "Sidecar", "HeartbeatCore", "Libvirt", "NFS",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Runs the built `kvmha` binary as separate processes; harness scripts live in Tests/Harness.
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["HeartbeatCore", .product(name: "AsyncHTTPClient", package: "async-http-client")],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
