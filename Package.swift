// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The test targets compile unoptimised, in the release build the tests run on: they hold only
/// the tests' own code (the modules under test are built as they ship), whole-module at -O they
/// took about 80 s of CI's build and unoptimised about 25 s, and the passes take as long either
/// way (Docs/TESTING.md, "One build").
let tests: [SwiftSetting] = strict + [.unsafeFlags(["-Onone"])]

let package = Package(
    name: "levchat-peer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "levchat-peer", targets: ["LevChatCLI"]),
        .executable(name: "levchat-bench", targets: ["LevChatBench"]),
        // For the fuzz targets in Fuzz/ (a package of their own).
        .library(name: "LevChatCore", targets: ["LevChatCore"]),
        .library(name: "LevChatTransport", targets: ["LevChatTransport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        // Pure core: codes, keys, frames, messages, handshake and room state machines. No I/O.
        .target(
            name: "LevChatCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        // TCP transport on SwiftNIO: framing handlers, bootstraps, the secure session.
        .target(
            name: "LevChatTransport",
            dependencies: [
                "LevChatCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        // Avahi's client library, from Debian's libavahi-client-dev. The module map links it; no
        // pkgConfig, because SwiftPM warns about the -D_REENTRANT that avahi-client.pc adds.
        .systemLibrary(
            name: "CAvahi",
            providers: [.apt(["libavahi-client-dev"])]
        ),
        // Extended attributes (sys/xattr.h), which the Glibc module does not export.
        .systemLibrary(name: "CLinuxExtras"),
        // Discovery over mDNS/DNS-SD through avahi-daemon, behind the core's RoomDiscovery.
        .target(
            name: "LevChatAvahi",
            dependencies: [
                "CAvahi",
                "LevChatCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Discovery with no daemon: levchat's own mDNS responder on UDP 5353, behind the same
        // RoomDiscovery (used only when avahi-daemon cannot be reached).
        .target(
            name: "LevChatMDNS",
            dependencies: [
                "LevChatCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The peer: host and member roles, stdin commands, event output.
        .target(
            name: "LevChatPeer",
            dependencies: [
                "CLinuxExtras",
                "LevChatCore",
                "LevChatAvahi",
                "LevChatMDNS",
                "LevChatTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "LevChatCLI",
            dependencies: [
                "LevChatCore",
                "LevChatPeer",
                "LevChatTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "LevChatBench",
            dependencies: [
                "LevChatCore",
                "LevChatTransport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // What more than one test target needs (not a test target itself, never in a product).
        .target(name: "LevChatTestSupport", path: "Tests/LevChatTestSupport", swiftSettings: tests),
        .testTarget(name: "LevChatCoreTests", dependencies: ["LevChatCore", "LevChatTestSupport"], swiftSettings: tests),
        .testTarget(
            name: "LevChatTransportTests",
            dependencies: [
                "LevChatCore", "LevChatTransport", "LevChatTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: tests
        ),
        .testTarget(
            name: "LevChatPeerTests",
            dependencies: [
                "LevChatCore", "LevChatTransport", "LevChatPeer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: tests
        ),
        // Drives the real levchat-peer and levchat-bench binaries; depending on the executables makes
        // `swift test` build them.
        .testTarget(
            name: "LevChatCLITests",
            dependencies: ["LevChatCore", "LevChatTransport", "LevChatPeer", "LevChatCLI", "LevChatBench", "LevChatTestSupport"],
            swiftSettings: tests
        ),
    ],
    swiftLanguageModes: [.v6]
)
