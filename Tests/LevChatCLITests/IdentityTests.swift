import Foundation
import Testing

/// Identity across runs and trust on first use (Docs/THREAT-MODEL.md, "Identity across runs"):
/// a user's key is kept between runs; a name that comes back with another key is a warning to
/// everyone who met it before, and stays marked.
@Suite(.timeLimit(.minutes(2)))
struct IdentityTests {
    /// A directory for one user's state, removed at the end.
    final class StateHome: Sendable {
        let path: String
        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-identity-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        var environment: [String: String] { ["XDG_STATE_HOME": path] }
    }

    /// `name`'s fingerprint in `peer`'s answer to its `answer`-th `/who` that lists `name` (an
    /// earlier answer is not taken for it).
    static func fingerprint(of name: String, at peer: PeerProcess, answer: Int) async throws -> String {
        func answers() -> [Event] { peer.events.filter { $0.type == "members" && $0.memberNames.contains(name) } }
        _ = try await peer.waitFor("/who with \(name) (answer \(answer))") { _ in answers().count >= answer }
        return try #require(answers()[answer - 1].member(name, "fingerprint") as? String)
    }

    @Test func theKeyIsKeptAcrossRunsInAPrivateFile() async throws {
        let bobHome = try StateHome()
        defer { withExtendedLifetime(bobHome) {} }  // removed when freed: not before the end
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        var fingerprints: [String] = []
        for run in 1...2 {
            let bob = try await room.join("bob", environment: bobHome.environment)
            room.host.send("/who")
            fingerprints.append(try await Self.fingerprint(of: "bob", at: room.host, answer: run))
            bob.send("/quit")
            #expect(try await bob.waitForExit() == 0)
            try await room.host.waitFor("bob leaving (run \(run))") { $0.isPresence("left", "bob") && room.host.events.filter { $0.isPresence("left", "bob") }.count == run }
        }
        #expect(fingerprints[0] == fingerprints[1] && fingerprints[0].count == 32)
        var status = stat()
        #expect(stat(bobHome.path + "/levchat/identity", &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        #expect(stat(bobHome.path + "/levchat", &status) == 0 && status.st_mode & 0o777 == 0o700)
        // A throwaway run writes nothing.
        let ephemeralHome = try StateHome()
        defer { withExtendedLifetime(ephemeralHome) {} }
        let eve = try await room.join("eve", extra: ["--ephemeral"], environment: ephemeralHome.environment)
        eve.send("/quit")
        #expect(try await eve.waitForExit() == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: ephemeralHome.path).isEmpty)
    }

    /// A key made read-only, as ssh users do with theirs (`chmod 400`), is still the user's key:
    /// it was refused (open for writing failed) and the run took a throwaway key, so everyone who
    /// met the user saw a changed key. Root may write any file, so as root the run is `nobody`'s.
    @Test func aKeyMadeReadOnlyIsStillTheUsersKey() async throws {
        let bobHome = try StateHome()
        defer { withExtendedLifetime(bobHome) {} }
        var prefix: [String] = []
        if geteuid() == 0 {
            // The test binary's folder may be closed to others (a clone under /root): a copy.
            let binary = bobHome.path + "/levchat-peer"
            try FileManager.default.copyItem(atPath: PeerProcess.binary.path, toPath: binary)
            #expect(chmod(bobHome.path, 0o755) == 0 && chown(bobHome.path, 65534, 65534) == 0 && chmod(binary, 0o755) == 0)
            prefix = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary]
        }
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        var fingerprints: [String] = []
        for run in 1...2 {
            if run == 2 { #expect(chmod(bobHome.path + "/levchat/identity", 0o400) == 0) }
            let bob = try PeerProcess("bob", ["join", room.code, "--name", "bob", "--peer", room.peerArgument, "--bind", "127.0.0.1", "--json"],
                                      environment: bobHome.environment, prefix: prefix, runsBinary: false)
            defer { bob.stop() }
            try await bob.waitFor("bob entering (run \(run))") { $0.type == "entered" }
            room.host.send("/who")
            fingerprints.append(try await Self.fingerprint(of: "bob", at: room.host, answer: run))
            bob.send("/quit")
            #expect(try await bob.waitForExit() == 0)
            #expect(!bob.errorText.contains("throwaway") && !bob.errorText.contains("cannot read"), "run \(run): \(bob.errorText)")
            try await room.host.waitFor("bob leaving (run \(run))") { $0.isPresence("left", "bob") && room.host.events.filter { $0.isPresence("left", "bob") }.count == run }
        }
        #expect(fingerprints.count == 2 && fingerprints[0] == fingerprints[1])
        // Still the user's: the run left it as it was.
        var status = stat()
        #expect(stat(bobHome.path + "/levchat/identity", &status) == 0 && status.st_mode & 0o777 == 0o400)
    }

    /// An identity that cannot be read or kept: one sentence that says where and why, the run
    /// goes on with a throwaway key, and the file is left as it was for the user to look at.
    @Test func anIdentityThatCannotBeUsedIsOneSentenceAndLeftAlone() async throws {
        let home = try StateHome()
        defer { withExtendedLifetime(home) {} }
        try FileManager.default.createDirectory(atPath: home.path + "/broken/levchat", withIntermediateDirectories: true)
        try "not a key\n".write(toFile: home.path + "/broken/levchat/identity", atomically: true, encoding: .utf8)
        try "a file where a folder should be\n".write(toFile: home.path + "/file", atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        for (state, says) in [
            ("/broken", "cannot read your identity at \(home.path)/broken/levchat/identity (it does not hold a key): fix or remove it; "),
            ("/file", "cannot keep your identity at \(home.path)/file/levchat (Not a directory); "),
        ] {
            let bob = try await room.join("bob", environment: ["XDG_STATE_HOME": home.path + state])
            bob.send("/quit")
            #expect(try await bob.waitForExit() == 0)
            let said = bob.errorText.split(separator: "\n").filter { $0.hasPrefix("levchat-peer:") }
            #expect(said.count == 1 && said.first.map(String.init) == "levchat-peer: " + says + "this run uses a throwaway key (--ephemeral asks for one without this note)", "\(bob.errorText)")
        }
        #expect(try String(contentsOfFile: home.path + "/broken/levchat/identity", encoding: .utf8) == "not a key\n")
    }

    /// Two runs with one identity (a state folder copied to a second machine): the second's join
    /// takes the first's place, and the first is told so and leaves, with one sentence, instead of
    /// coming back to take the place in turn. They pushed each other out for ever, thousands of
    /// "has entered" lines on every screen.
    @Test func twoRunsOfOneIdentityDoNotPushEachOtherOut() async throws {
        let home = try StateHome(), copy = try StateHome()
        defer { withExtendedLifetime((home, copy)) {} }
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob", environment: home.environment)
        try FileManager.default.createDirectory(atPath: copy.path + "/levchat", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: home.path + "/levchat/identity", toPath: copy.path + "/levchat/identity")
        let bobby = try await room.join("bobby", environment: copy.environment)
        #expect(try await bob.waitForExit() == 67)
        let closed = try #require(bob.events.first { $0.type == "closed" })
        #expect(closed["reason"] == "replaced", "\(closed)")
        let said = closed["message"] ?? ""
        #expect(said.contains("your identity joined this room again from 127.0.0.1") && said.contains("another levchat-peer uses your identity"), "\(closed)")
        // The room settles: bobby stays, and nobody came back.
        bobby.send("still here")
        try await room.host.waitFor("bobby's line") { $0.isMessage(from: "bobby", text: "still here") }
        try await Task.sleep(for: .seconds(1))
        #expect(room.host.events.filter { $0.type == "presence" && $0["event"] == "joined" }.count == 2, "\(room.host.events.filter { $0.type == "presence" })")
        #expect(bobby.isRunning)
    }

    @Test(arguments: [true, false])
    func aKnownNameWithAnotherKeyIsAWarningThatStays(json: Bool) async throws {
        let carolHome = try StateHome(), bobHome = try StateHome(), impostorHome = try StateHome()
        defer { withExtendedLifetime((carolHome, bobHome, impostorHome)) {} }  // removed when freed
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob", environment: bobHome.environment)
        let carol = try await room.join("carol", environment: carolHome.environment, waitForEntry: json, json: json)
        if !json { try await carol.waitForOutput("carol has entered the room") }
        bob.send("/quit")
        #expect(try await bob.waitForExit() == 0)
        let impostor = try await room.join("bob", environment: impostorHome.environment)
        defer { withExtendedLifetime(impostor) {} }
        if json {
            let warning = try await carol.waitFor("the key warning") { $0.type == "warning" }
            #expect(warning["kind"] == "key_changed" && warning["name"] == "bob")
            #expect(warning["previous"] != warning["fingerprint"] && warning["previous"]?.count == 32)
            carol.send("/who")
            let who = try await carol.waitFor("/who") { $0.type == "members" && $0.memberNames.contains("bob") }
            #expect(who.member("bob", "key_changed") as? Bool == true)
            #expect(who.member("alice", "key_changed") as? Bool == false)
            carol.send("/whois bob")
            let whois = try await carol.waitFor("/whois") { $0.type == "whois" }
            #expect(whois.bool("key_changed") == true && whois["fingerprint"] == warning["fingerprint"])
        } else {
            try await carol.waitForOutput("bob's key has changed since ")
            #expect(carol.outputLines.contains { $0.hasPrefix("! bob's key has changed since 20") && $0.hasSuffix(": this may not be bob") })
            carol.send("/who")
            try await carol.waitForOutput("(KEY CHANGED)")
        }
        // The known_peers file remembers the first key, not the impostor's.
        let known = try String(contentsOfFile: carolHome.path + "/levchat/known_peers", encoding: .utf8)
        #expect(known.split(separator: "\n").filter { $0.hasSuffix(" bob") }.count == 1)
    }
}
