import Foundation
import Testing

/// The Debian package (`scripts/package`), installed with apt the way a user would, on a machine
/// with no Swift runtime in the library path: the installed binary says its version and runs a room
/// on loopback, its manual page and completions are where Debian's tools look, and it is removed
/// again at the end. Runs in CI's last pass (`scripts/test` sets LEVCHAT_PACKAGE to the .deb it
/// built); needs root for apt.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["LEVCHAT_PACKAGE"] != nil, "set LEVCHAT_PACKAGE to a .deb"),
       .timeLimit(.minutes(5)))
struct PackageTests {
    static let deb = ProcessInfo.processInfo.environment["LEVCHAT_PACKAGE"] ?? ""
    static let installed = "/usr/bin/levchat-peer"

    static func run(_ command: [String]) async throws -> (Int32, String) {
        try await SimulatedLAN.run(command, environment: ["DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"],
                                   timeout: .seconds(180))
    }

    @Test func theInstalledPackageRunsARoom() async throws {
        let (installStatus, installOutput) = try await Self.run(["/usr/bin/apt-get", "install", "-y", "--no-install-recommends", Self.deb])
        #expect(installStatus == 0, "\(installOutput)")
        var failure: (any Error)?
        do { try await Self.exerciseInstalled() } catch { failure = error }
        // Removed again whatever happened: the machine is left as it was found.
        let (removeStatus, removeOutput) = try await Self.run(["/usr/bin/apt-get", "remove", "-y", "levchat-peer"])
        #expect(removeStatus == 0 && !FileManager.default.fileExists(atPath: Self.installed), "\(removeOutput)")
        if let failure { throw failure }
    }

    static func exerciseInstalled() async throws {
        // Nothing of the toolchain is needed: every library the binary loads comes from Debian.
        let (lddStatus, libraries) = try await Self.run(["/usr/bin/ldd", Self.installed])
        #expect(lddStatus == 0 && !libraries.contains("swift") && !libraries.contains("not found"), "\(libraries)")
        let (versionStatus, version) = try await Self.run([Self.installed, "--version"])
        #expect(versionStatus == 0 && !version.isEmpty)
        for file in ["/usr/share/man/man1/levchat-peer.1.gz", "/usr/share/bash-completion/completions/levchat-peer",
                     "/usr/share/zsh/vendor-completions/_levchat-peer", "/usr/share/fish/vendor_completions.d/levchat-peer.fish"] {
            #expect(FileManager.default.fileExists(atPath: file), "\(file) missing")
        }

        let alice = try PeerProcess("alice", ["create", "--name", "alice", "--no-mdns", "--port", "0", "--bind", "127.0.0.1", "--json",
                                              "--ephemeral"], prefix: [Self.installed], runsBinary: false)
        defer { alice.stop() }
        let room = try await alice.waitFor("room event") { $0.type == "room" }
        let (code, port) = (try #require(room["code"]), try #require(room.int("port")))
        let bob = try PeerProcess("bob", ["join", "--name", "bob", "--peer", "127.0.0.1:\(port)", "--bind", "127.0.0.1", "--json",
                                          "--ephemeral"], environment: ["LEVCHAT_CODE": code], prefix: [Self.installed], runsBinary: false)
        defer { bob.stop() }
        try await bob.waitFor("bob entered") { $0.type == "entered" }
        bob.send("from the package")
        try await alice.waitFor("bob's line") { $0.isMessage(from: "bob", text: "from the package") }
        bob.send("/quit")
        #expect(try await bob.waitForExit() == 0)
    }
}
