import Foundation
import LevChatCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A host that misbehaves towards a real member (`levchat-peer join`): broadcast records replayed,
/// or sealed for another epoch. The member closes that link with the reason, and shows nothing
/// twice and nothing forged.
@Suite(.timeLimit(.minutes(2)))
struct BroadcastAttackTests {
    /// A listening socket on 127.0.0.1 and a port.
    static func listen() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && Glibc.listen(fd, 4) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw RawClientError.connectFailed(errno) }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A listener that knows no code answers a joiner's hello with a refusal whose words would
    /// set the terminal's title and clear the screen (issue 16's second attack). The joiner says
    /// what it was told, escaped: no escape or bell byte reaches its stderr or stdout.
    @Test(arguments: [false, true])
    func aRefusalFromAPeerWithNoCodeArrivesEscaped(json: Bool) async throws {
        let (listener, port) = try Self.listen()
        defer { close(listener) }
        let bob = try PeerProcess("bob", ["join", "--name", "bob", "--peer", "127.0.0.1:\(port)", "--bind", "127.0.0.1"] + (json ? ["--json"] : []),
                                  environment: ["LEVCHAT_CODE": RoomCode.random().description])
        defer { bob.stop() }
        let accepted = accept(listener, nil, nil)
        #expect(accepted >= 0)
        let link = RawClient(accepted: accepted)
        defer { withExtendedLifetime(link) {} }  // open until the end, even in an optimised build
        _ = try #require(link.readFrame())  // the hello
        let hostile = "pwned\u{1B}]0;owned title\u{07}\u{1B}[2J\u{9B}31m\u{202E}"
        link.sendFrame(WireMessage.error(ErrorInfo(code: .roomFull, message: hostile)).jsonEncoded())
        let status = try await bob.waitForExit()
        let everything = bob.errorText + "\n" + bob.outputLines.joined(separator: "\n")
        #expect(status == 70, "\(everything)")
        #expect(everything.contains("pwned"), "\(everything)")
        for byte in ["\u{1B}", "\u{07}", "\u{9B}", "\u{202E}"] {
            #expect(!everything.contains(byte), "\(byte.unicodeScalars.first!.value) reached the terminal: \(everything)")
        }
        #expect(everything.contains(json ? #"\\x1B]0;owned title\\x07"# : #"\x1B]0;owned title\x07\x1B[2J"#), "\(everything)")
    }

    enum Misdeed: String, CaseIterable, CustomTestStringConvertible {
        case replayedCounter, anotherEpoch
        var testDescription: String { rawValue }
    }

    @Test(arguments: Misdeed.allCases)
    func aMemberClosesTheLinkOnABadBroadcast(_ misdeed: Misdeed) async throws {
        let (listener, port) = try Self.listen()
        defer { close(listener) }
        let code = RoomCode.random()
        let grant = RoomGrant.random()
        let host = PeerIdentity()
        // The fake host runs in this test process and answers no ping; a long dead-link time keeps
        // bob from taking it for gone when other tests hold the pool's threads for seconds.
        let bob = try PeerProcess("bob", ["join", "--name", "bob", "--peer", "127.0.0.1:\(port)", "--bind", "127.0.0.1", "--json"],
                                  environment: ["LEVCHAT_CODE": code.description, "LEVCHAT_DEAD_AFTER_MS": "60000"])
        defer { bob.stop() }

        // The fake host: the real handshake, a welcome, then broadcasts.
        let accepted = accept(listener, nil, nil)
        #expect(accepted >= 0)
        let link = RawClient(accepted: accepted)
        defer { withExtendedLifetime(link) {} }  // open until the end, even in an optimised build
        var handshake = HostHandshake(code: code, grant: grant)
        let challenge = try handshake.receiveHello(try #require(link.readFrame()))
        link.sendFrame(challenge)
        var (reply, ciphers) = try handshake.receiveAuth(try #require(link.readFrame()))
        link.sendFrame(reply)
        guard case .join(let join) = try WireMessage.decode(try ciphers.opener.open(try #require(link.readFrame()))) else {
            Issue.record("bob did not join")
            return
        }
        let me = Member(node: host.node, name: "mallory", ordinal: 1, endpoints: ["127.0.0.1:\(port)"], key: Base64.encode(host.publicKey),
                        claim: host.claimName("mallory", room: grant.roomID, counter: 1))
        let you = Member(node: join.node, name: "bob", ordinal: 2, endpoints: [], key: join.key, claim: join.claim)
        let welcome = Welcome(you: you, roster: RosterSnapshot(epoch: 1, host: host.node, members: [me, you]), historyCount: 0, grant: grant)
        link.sendFrame(try ciphers.sealer.seal(WireMessage.welcome(welcome).encoded()))
        try await bob.waitFor("bob in the room") { $0.type == "entered" }

        func record(_ seq: Int, _ text: String) -> WireMessage {
            let chat = Chat(signedBy: host, room: grant.roomID, seq: seq, name: "mallory", text: text)
            return .msg(ChatRecord(seq: seq, id: chat.id, from: "mallory", text: text, time: 0, key: Base64.encode(host.publicKey), sig: chat.sig))
        }
        var sealer = BroadcastSealer(grant: grant, epoch: 1, host: host.node)
        let first = try sealer.seal(record(1, "once").encoded())
        link.sendFrame(first)
        try await bob.waitFor("the first broadcast") { $0.isMessage(from: "mallory", text: "once") }
        switch misdeed {
        case .replayedCounter:
            link.sendFrame(first)
            #expect(link.waitForClose())
            try await bob.waitForDiagnostic("broadcast record with counter 0, not above the last one (0)")
        case .anotherEpoch:
            var other = BroadcastSealer(grant: grant, epoch: 2, host: host.node)
            _ = try other.seal([0])  // counter 1, above the last one
            link.sendFrame(try other.seal(record(2, "from another epoch").encoded()))
            #expect(link.waitForClose())
            try await bob.waitForDiagnostic("failed authentication")
        }
        #expect(bob.events.filter { $0.type == "message" }.map { $0["text"] } == ["once"])
    }
}
