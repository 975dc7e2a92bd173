import Foundation
import LevChatTransport
import LevChatCore
import Testing

/// Online guessing (Docs/THREAT-MODEL.md): an address that keeps failing the code is refused for a
/// while; everyone else gets in as before.
@Suite(.timeLimit(.minutes(2)))
struct GuessingLimitTests {
    /// Only the host answers guesses of the code, so the room's budget is the host's: a member
    /// asked with the code (right or wrong) says where the host is before any CPace, and a real
    /// joiner pointed at the member gets in through it.
    @Test func aMemberAnswersTheCodeOnlyWithWhereTheHostIs() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        _ = try await room.join("bob")
        let (port, code) = (room.port, room.code)
        // The raw clients block on their sockets: on a thread of their own, not the tests' pool.
        let found = await Self.concurrently(1) { _ -> String in
            guard let eve = try? RawClient(port: port), (try? eve.handshake(code: code)) == .some(nil), (try? eve.join(name: "eve")) != nil,
                  let endpoint = eve.welcome?.roster.members.first(where: { $0.name == "bob" })?.endpoints.first else { return "" }
            return endpoint
        }
        let bobsEndpoint = try #require(found.keys.first { !$0.isEmpty })
        let bobsPort = try #require(Endpoint.parse(bobsEndpoint)?.port)
        let wrong = String(code.hasPrefix("Z") ? "Y" + code.dropFirst() : "Z" + code.dropFirst())
        let asked = [code] + Array(repeating: wrong, count: 10)
        let answers = await Self.concurrently(asked.count) { i -> String in
            guard let asker = try? RawClient(port: bobsPort), let parsed = try? RoomCode(parsing: asked[i]) else { return "no connection" }
            asker.sendFrame(ClientHandshake(credentials: RoomCredentials(code: parsed, grant: nil)).helloBytes)
            guard let frame = asker.readFrame(), case .redirect(let redirect)? = try? WireMessage.decode(frame) else { return "not a redirect" }
            return "\(redirect.endpoints) \(redirect.role?.rawValue ?? "-") closed: \(asker.waitForClose())"
        }
        #expect(answers == ["\([room.peerArgument]) member closed: true": asked.count], "\(answers)")
        let carol = try PeerProcess("carol", ["join", room.code, "--name", "carol", "--peer", "127.0.0.1:\(bobsPort)",
                                              "--bind", "127.0.0.1", "--json", "--ephemeral"])
        defer { carol.stop() }
        try await carol.waitFor("carol enters through bob") { $0.type == "entered" }
        try await room.host.waitFor("carol's join at the host") { $0.isPresence("joined", "carol") }
    }

    @Test func aHundredWrongCodesFromOneAddressDoNotKeepAnotherOut() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let wrong = String(room.code.hasPrefix("Z") ? "Y" + room.code.dropFirst() : "Z" + room.code.dropFirst())
        var refusals: [String: Int] = [:]
        for _ in 0..<100 {
            let attacker = try RawClient(port: room.port, source: "127.0.0.2")
            guard case .error(let info)? = try? attacker.handshake(code: wrong) else {
                Issue.record("an attempt was not refused")
                continue
            }
            refusals[info.code, default: 0] += 1
        }
        #expect(refusals == ["auth": 5, "limited": 95])
        // Once limited, even the right code from that address waits its turn.
        let late = try RawClient(port: room.port, source: "127.0.0.2")
        guard case .error(let info)? = try late.handshake(code: room.code) else { Issue.record("not refused"); return }
        #expect(info.code == "limited" && info.message.contains("try again in"))

        // Someone at another address gets in as usual, and talks.
        let bob = try await room.join("bob")
        bob.send("in despite the noise")
        try await room.host.waitFor("bob's line") { $0.isMessage(from: "bob", text: "in despite the noise") }
        // The host's user was told once, naming the address.
        let notices = room.host.events.filter { $0.type == "notice" && ($0["message"] ?? "").contains("failed to prove the room code") }
        #expect(notices.count == 1 && (notices.first?["message"] ?? "").contains("127.0.0.2"))
    }

    /// Issue 16's third attack: many addresses, each guessing too slowly to trip its own limit.
    /// 200 addresses (127.0.1.1 … 127.0.1.200) send a wrong code each, three rounds over, against
    /// a room-wide budget of 300 wrong answers a minute (LEVCHAT_GUESS_BUDGET; 30 by default, 300
    /// here so the test takes seconds): the host answers at most the budget, the rest wait their
    /// turn and are closed unanswered at the handshake deadline; a joiner with the code, from an
    /// address that has not been guessing, gets in during the attack; the host's user is told once.
    @Test func twoHundredAddressesGuessingSlowlyGetNoMoreThanTheRoomsBudget() async throws {
        let budget = 300
        let room = try await LoopbackRoom(environment: ["LEVCHAT_GUESS_BUDGET": "\(budget)", "LEVCHAT_HANDSHAKE_TIMEOUT_MS": "3000"])
        defer { room.stopAll() }
        let wrong = String(room.code.hasPrefix("Z") ? "Y" + room.code.dropFirst() : "Z" + room.code.dropFirst())
        let port = room.port
        let started = ContinuousClock.now
        var answered = 0
        var unanswered = 0
        var failedConnects = 0
        func round(_ n: Int) async -> [String: Int] {
            await Self.concurrently(200) { i -> String in
                guard let client = try? RawClient(port: port, source: "127.0.1.\(i + 1)") else { return "connect" }
                guard let reply = try? client.handshake(code: wrong) else { return "unanswered" }
                if case .error(let info) = reply { return info.code }
                return "joined?"
            }
        }
        var outcomes = [await round(1), await round(2)]
        // The guessers' sources all have a wrong code on record now. While the third round waits
        // for its turns, a joiner from another address goes before them.
        async let third = round(3)
        let joinStarted = ContinuousClock.now
        let bob = try await room.join("bob")
        print("a joiner with the code got in \(ContinuousClock.now - joinStarted) into the third round of guessing")
        outcomes.append(await third)
        for (n, outcome) in outcomes.enumerated() {
            answered += outcome["auth", default: 0]
            unanswered += outcome["unanswered", default: 0]
            // Wrong, or left waiting until the deadline: never refused as limited, never let in. (A
            // connect that fails on a loaded machine never reached the room; it is only counted.)
            #expect(Set(outcome.keys).isSubset(of: ["auth", "unanswered", "connect"]), "round \(n + 1): \(outcome)")
            failedConnects += outcome["connect", default: 0]
        }
        let minutes = Double((ContinuousClock.now - started).components.seconds + 1) / 60
        let bound = budget + Int((Double(budget) * minutes).rounded(.up))
        print("600 wrong codes from 200 addresses in \(ContinuousClock.now - started): \(answered) answered, \(unanswered) closed unanswered (budget: at most \(bound))")
        #expect(answered <= bound)
        // The bound holds however slow the machine (a slow run only allows more); how many were
        // left unanswered depends on the speed, so it is printed, not asserted.
        #expect(answered + unanswered + failedConnects == 600)
        let told = room.host.events.filter { $0.type == "notice" && ($0["message"] ?? "").contains("being guessed at") }
        #expect(told.count == 1)
        bob.send("in despite the guessing")
        try await room.host.waitFor("bob's line") { $0.isMessage(from: "bob", text: "in despite the guessing") }
    }

    /// Runs `count` blocking jobs on threads of their own (not the tests' pool) and counts their
    /// results.
    static func concurrently(_ count: Int, _ job: @escaping @Sendable (Int) -> String) async -> [String: Int] {
        let (results, continuation) = AsyncStream.makeStream(of: String.self)
        for i in 0..<count {
            Thread { continuation.yield(job(i)) }.start()
        }
        var counts: [String: Int] = [:]
        var seen = 0
        for await result in results {
            counts[result, default: 0] += 1
            seen += 1
            if seen == count { break }
        }
        return counts
    }

    /// 3,000 connections from 127.0.0.2 that never finish the handshake (silent, garbage, a hello
    /// and nothing more) while the room chats: a joiner from 127.0.0.1 still gets in, and the
    /// room loses nothing. The joiner's wait is printed; Docs/BENCHMARKS.md has the figure.
    @Test func threeThousandUnfinishedConnectionsFromOneAddressDoNotKeepAnotherOut() async throws {
        // The flood's own sockets need descriptors in this process too.
        let limit = Transport.raiseDescriptorLimit()
        try #require(limit >= 8_192, "the test needs 8192 descriptors; the hard limit is \(limit)")

        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let count = 3_000
        let code = room.code, port = room.port
        let flood = await ConnectionHold {
            (0..<count).compactMap { i in
                guard let client = try? RawClient(port: port, source: "127.0.0.2") else { return nil }
                client.setReadTimeout(.milliseconds(200))
                switch i % 3 {
                case 0: break  // silent
                case 1: client.send((0..<64).map { _ in UInt8.random(in: 0...255) })
                default: _ = try? client.helloOnly(code: code)  // half a handshake
                }
                return client
            }
        }
        defer { flood.release() }
        #expect(flood.count == count)

        bob.send("during the flood")
        let started = ContinuousClock.now
        let carol = try await room.join("carol")
        print("a joiner from another address got in \(ContinuousClock.now - started) after 3,000 unfinished connections from 127.0.0.2")
        carol.send("in despite the flood")
        for peer in [room.host, bob, carol] {
            try await peer.waitFor("carol's line") { $0.isMessage(from: "carol", text: "in despite the flood") }
        }
        try await room.host.waitFor("bob's line") { $0.isMessage(from: "bob", text: "during the flood") }
        #expect(room.host.events.contains { $0.type == "notice" && ($0["message"] ?? "").contains("127.0.0.2 has \(AddressGuard.maxUnfinishedPerAddress) connections") })
    }

    /// A host with very few descriptors says so when a flood uses them up, rather than going
    /// quiet (NIO backs off from a failing accept by itself, silently), and accepts again once the
    /// flood is gone: running out once must not end its listener (it did: the accept error ended
    /// the listener's stream).
    @Test func runningOutOfDescriptorsIsSaidAndTheHostAcceptsAgainAfter() async throws {
        let host = try PeerProcess("alice", ["create", "--name", "alice", "--no-mdns", "--port", "0", "--bind", "127.0.0.1", "--json"],
                                   prefix: ["/usr/bin/prlimit", "--nofile=64:64"])
        defer { host.stop() }
        let room = try await host.waitFor("room event") { $0.type == "room" }
        let port = try #require(room.int("port"))
        try await host.waitForDiagnostic("only 64 file descriptors allowed")
        // 32 unfinished handshakes from each of three addresses: more than 64 descriptors.
        let flood = await ConnectionHold {
            ["127.0.0.2", "127.0.0.3", "127.0.0.4"].flatMap { source in
                (0..<AddressGuard.maxUnfinishedPerAddress).compactMap { _ in try? RawClient(port: port, source: source) }
            }
        }
        defer { flood.release() }
        try await host.waitForDiagnostic("out of file descriptors")
        flood.release()
        let code = try #require(room["code"])
        let bob = try PeerProcess("bob", ["join", "--name", "bob", "--peer", "127.0.0.1:\(port)", "--bind", "127.0.0.1", "--json"],
                                  environment: ["LEVCHAT_CODE": code])
        defer { bob.stop() }
        try await bob.waitFor("bob entering after the flood", timeout: .seconds(60)) { $0.type == "entered" }
        try await host.waitFor("bob at the host") { $0.isPresence("joined", "bob") }
        #expect(!host.errorText.contains("stopped accepting"), "\(host.transcript)")
    }
}

/// Connections opened on a thread of their own (connecting blocks) and held open until
/// `release`, so a flood never holds one of the tests' two pool threads.
final class ConnectionHold: Sendable {
    let count: Int

    init(_ open: @escaping @Sendable () -> [RawClient]) async {
        let (opened, continuation) = AsyncStream.makeStream(of: Int.self)
        let released = DispatchSemaphore(value: 0)
        Thread {
            let clients = open()
            continuation.yield(clients.count)
            continuation.finish()
            // Closed here, when released: an optimised build would otherwise free them (and close
            // them) right after their last use above.
            withExtendedLifetime(clients) { released.wait() }
        }.start()
        var count = 0
        for await n in opened { count = n }
        self.count = count
        self.released = released
    }

    private let released: DispatchSemaphore

    func release() { released.signal() }
}
