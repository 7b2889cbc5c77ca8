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
    ],
    targets: [
        // C libraries: module maps and shims only.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .systemLibrary(name: "CLibNFS", pkgConfig: "libnfs", providers: [.apt(["libnfs-dev"])]),

        // Thin Swift wrappers; they know nothing of heartbeats.
        .target(name: "Libvirt", dependencies: ["CLibvirt"], swiftSettings: strict),
        .target(name: "NFS", dependencies: ["CLibNFS"], swiftSettings: strict),

        // Pure decisions: no I/O, imports nothing of ours.
        .target(name: "HeartbeatCore", swiftSettings: strict),

        // The daemon: services and adapters.
        .target(
            name: "Sidecar",
            dependencies: [
                "HeartbeatCore", "Libvirt", "NFS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "kvmha",
            dependencies: [
                "Sidecar", "HeartbeatCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "kvmha-bench",
            dependencies: ["HeartbeatCore", "Sidecar"],
            path: "Benchmarks/BeatBenchmark",
            swiftSettings: strict
        ),

        .testTarget(name: "HeartbeatCoreTests", dependencies: ["HeartbeatCore"], swiftSettings: strict),
        .testTarget(name: "LibvirtTests", dependencies: ["Libvirt"], swiftSettings: strict),
        .testTarget(name: "NFSTests", dependencies: ["NFS"], swiftSettings: strict),
        .testTarget(name: "SidecarTests", dependencies: ["Sidecar", "HeartbeatCore"], swiftSettings: strict),
        // Runs the built `kvmha` binary as separate processes; harness scripts live in Tests/Harness.
        .testTarget(name: "IntegrationTests", dependencies: ["HeartbeatCore"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
