// swift-tools-version:6.1
// libFuzzer targets for levchat's decoders (issue 10; Docs/TESTING.md, "Fuzzing"). A package of its
// own, so the project's normal build never links a fuzzer; `scripts/fuzz` builds it with
// `-sanitize=fuzzer,address` and runs each target.
import PackageDescription

let package = Package(
    name: "levchat-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "levchat-peer", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
    ],
    targets: [
        .target(name: "FuzzDriver"),
        .executableTarget(name: "FuzzMessages", dependencies: ["FuzzDriver", .product(name: "LevChatCore", package: "levchat-peer")]),
        .executableTarget(name: "FuzzHandshake", dependencies: ["FuzzDriver", .product(name: "LevChatCore", package: "levchat-peer")]),
        .executableTarget(name: "FuzzDiscovery", dependencies: ["FuzzDriver", .product(name: "LevChatCore", package: "levchat-peer")]),
        .executableTarget(name: "FuzzDNS", dependencies: ["FuzzDriver", .product(name: "LevChatCore", package: "levchat-peer")]),
        .executableTarget(name: "FuzzArchive", dependencies: ["FuzzDriver", .product(name: "LevChatCore", package: "levchat-peer")]),
        .executableTarget(name: "FuzzFrames", dependencies: [
            "FuzzDriver",
            .product(name: "LevChatTransport", package: "levchat-peer"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
