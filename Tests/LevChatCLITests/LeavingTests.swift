import Foundation
import LevChatCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Leaving in every state (issue 20): input that ends at once, and SIGTERM or SIGINT while joining,
/// in the room, during a host change or while leaving, end the run within seconds.
@Suite(.timeLimit(.minutes(2)))
struct LeavingTests {
    /// `join … < /dev/null`, as scripts and services start peers: it enters, then leaves.
    @Test func aPeerWhoseInputIsEmptyEntersAndLeaves() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob", stdinFile: "/dev/null", waitForEntry: false)
        #expect(try await bob.waitForExit() == 0)
        #expect(bob.events.contains { $0.type == "entered" })
        #expect(bob.events.last?["reason"] == "left")
        try await room.host.waitFor("bob entering") { $0.isPresence("joined", "bob") }
        try await room.host.waitFor("bob leaving") { $0.isPresence("left", "bob") && $0["reason"] == "quit" }
    }

    /// `create < /dev/null` (nohup, cron, a service): the room is made and gone at once, as its
    /// input has ended, and the host says why and how to keep one open; a host whose input is a
    /// pipe that stays open is not told.
    @Test func aHostWhoseInputIsEmptySaysWhyTheRoomEnds() async throws {
        let alice = try PeerProcess("alice", ["create", "--name", "alice", "--no-mdns", "--bind", "127.0.0.1", "--json"], stdinFile: "/dev/null")
        defer { alice.stop() }
        #expect(try await alice.waitForExit() == 0)
        #expect(alice.events.contains { $0.type == "room" })
        #expect(alice.errorText.contains("standard input is /dev/null, so the room ends as soon as it is made"), "\(alice.errorText)")
        #expect(alice.errorText.contains("sleep infinity | levchat-peer create"))

        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        room.host.send("/quit")
        #expect(try await room.host.waitForExit() == 0)
        #expect(!room.host.errorText.contains("standard input is"), "\(room.host.errorText)")
    }

    /// `join … | sed '/entered/q'`: the reader of its output ends once it has what it wanted. The
    /// peer leaves as at the end of its input, the line it took while joining delivered, and says
    /// why on stderr; it stayed in the room, unseen, before. Nothing is said in the room after the
    /// reader ends, so no failed write tells the peer: it learns it from the pipe itself.
    @Test func aPeerWhoseOutputIsGoneLeaves() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let script = #"{ "$0" "$@"; echo "peer exit $?" >&2; } | sed '/"type":"entered"/q'"#
        let carol = try PeerProcess("carol", ["join", room.code, "--name", "carol", "--peer", room.peerArgument, "--bind", "127.0.0.1", "--json"],
                                    prefix: ["/bin/sh", "-c", script])
        defer {
            // The peer runs in the shell's process group: if it stayed, it goes with the group.
            if carol.isRunning { kill(-carol.pid, SIGKILL) }
            carol.stop()
        }
        carol.send("typed while joining")
        try await carol.waitFor("carol entering") { $0.type == "entered" }
        try await room.host.waitFor("carol's line") { $0.isMessage(from: "carol", text: "typed while joining") }
        try await room.host.waitFor("carol leaving") { $0.isPresence("left", "carol") && $0["reason"] == "quit" }
        try await carol.waitForDiagnostic("peer exit 0")
        #expect(carol.errorText.contains("standard output was closed"))
        #expect(try await carol.waitForExit() == 0)
    }

    /// A member that quits while it joins sends its `bye` right behind its `join`. The host reads
    /// both at once, before that link's reads move to the room's event loop (Docs/ARCHITECTURE.md,
    /// "The host's hot path"); the bye still counts, in order: the member joined, then quit.
    @Test func aByeRightBehindTheJoinIsAQuit() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let client = try RawClient(port: room.port)
        #expect(try client.handshake(code: room.code) == nil)
        let join = WireMessage.join(Join(node: client.identity.node, name: "carol", listenPort: 0, endpoints: [], lastSeq: 0,
                                         key: client.publicKey, claim: client.claim("carol"), proof: client.linkProof()))
        // Both frames in one write, so they reach the host in one read.
        let frames = try [client.seal(join), client.seal(.bye(Bye(reason: "quit")))].map { payload in
            let n = UInt32(payload.count)
            return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload
        }
        client.send(frames[0] + frames[1])
        try await bob.waitFor("carol entering") { $0.isPresence("joined", "carol") }
        try await bob.waitFor("carol quitting") { $0.isPresence("left", "carol") && $0["reason"] == "quit" }
        bob.send("still here")
        try await room.host.waitFor("bob's line") { $0.isMessage(from: "bob", text: "still here") }
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalInTheRoomLeaves(_ signal: Int32) async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        bob.signal(signal)
        #expect(try await bob.waitForExit() == 0)
        try await room.host.waitFor("bob leaving") { $0.isPresence("left", "bob") && $0["reason"] == "quit" }
    }

    /// During a host change: the host is killed and its successor (bob, the senior member) is
    /// frozen, so carol is searching for a host that does not answer. A signal ends her run at once
    /// (had she promoted herself by then, she leaves as the host: exit 0 all the same).
    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalDuringAHostChangeEndsTheRun(_ signal: Int32) async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let carol = try await room.join("carol")
        try await bob.waitFor("carol in the room") { $0.isPresence("joined", "carol") }
        await bob.freeze()
        defer { bob.signal(SIGCONT) }
        room.host.killNow()
        try await carol.waitForDiagnostic("lost the host")
        carol.signal(signal)
        #expect(try await carol.waitForExit() == 0)
        #expect(carol.events.last?["reason"] == "left")
    }

    /// While leaving: bob's line waits for the echo of a frozen host that he never takes for lost
    /// (a dead-link time of ten minutes) when his input ends, so he is leaving and waiting; the
    /// first signal gives up the wait (the user already asked to leave once), and the line is
    /// reported as not confirmed (exit 69). Before, he waited 30 s for the echo.
    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalWhileLeavingEndsTheWait(_ signal: Int32) async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob", environment: ["LEVCHAT_DEAD_AFTER_MS": "600000"])
        await room.host.freeze()
        defer { room.host.signal(SIGCONT) }
        bob.send("nobody confirms this")
        bob.closeInput()
        try await bob.waitForDiagnostic("leaving: waiting for the host to confirm 1 line(s)")
        bob.signal(signal)
        // Well before the 30 s after which leaving gives up by itself.
        #expect(try await bob.waitForExit(timeout: .seconds(20)) == 69)
        #expect(bob.events.last?["reason"] == "undelivered", "\(bob.events)\n\(bob.errorText)")
    }

    /// A host that takes the connection and never answers: the handshake would wait a minute
    /// (LEVCHAT_HANDSHAKE_TIMEOUT_MS); a signal ends the run long before that.
    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalWhileJoiningEndsTheRunAtOnce(_ signal: Int32) async throws {
        let (listener, port) = try BroadcastAttackTests.listen()
        defer { close(listener) }
        let bob = try PeerProcess("bob", ["join", "--name", "bob", "--peer", "127.0.0.1:\(port)", "--bind", "127.0.0.1", "--json"],
                                  environment: ["LEVCHAT_CODE": RoomCode.random().description, "LEVCHAT_HANDSHAKE_TIMEOUT_MS": "60000"])
        defer { bob.stop() }
        let accepted = accept(listener, nil, nil)
        #expect(accepted >= 0)
        let link = RawClient(accepted: accepted)  // closes the socket when freed
        defer { withExtendedLifetime(link) {} }  // not before the end: bob is to be mid-handshake
        _ = try #require(link.readFrame())  // bob's hello: bob is joining now
        let signalled = ContinuousClock.now
        bob.signal(signal)
        #expect(try await bob.waitForExit(timeout: .seconds(30)) == 0)
        let took = ContinuousClock.now - signalled
        #expect(took < .seconds(30), "\(took)")
        print("a joiner signalled during its handshake ended \(took) later")
    }
}
