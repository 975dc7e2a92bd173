import Foundation
import Testing

/// Host migration on the simulated LAN (Docs/MIGRATION.md): real binaries, real avahi-daemons,
/// real TCP between network namespaces, hosts that quit, are killed, or lose their link.
@Suite(.serialized, .enabled(if: SimulatedLAN.enabled, SimulatedLAN.skipComment), .timeLimit(.minutes(3)))
struct MigrationLANTests {
    /// The first name creates the room on the first host; the others join in order, each waiting
    /// until everyone has seen it enter, so ordinals follow the list.
    static func room(_ lan: SimulatedLAN, _ peers: [(host: String, name: String)]) async throws -> (peers: [PeerProcess], code: String) {
        let (creator, code) = try await DiscoveryLANTests.create(lan, on: peers[0].host, name: peers[0].name)
        var all = [creator]
        for (host, name) in peers.dropFirst() {
            let peer = try DiscoveryLANTests.join(lan, on: host, name: name, code: code)
            try await peer.waitFor("\(name) entered") { $0.type == "entered" }
            for other in all { try await other.waitFor("\(name) entering") { $0.isPresence("joined", name) } }
            all.append(peer)
        }
        return (all, code)
    }

    /// What a peer showed, as `seq from: text` lines in order.
    static func log(_ peer: PeerProcess) -> [String] {
        peer.events.filter { $0.type == "message" }.map { "\($0.int("seq") ?? -1) \($0["from"] ?? ""): \($0["text"] ?? "")" }
    }

    static func texts(_ peer: PeerProcess) -> [String] {
        peer.events.filter { $0.type == "message" }.compactMap { $0["text"] }
    }

    static func waitForHost(_ peer: PeerProcess, _ name: String, timeout: Duration = .seconds(20)) async throws -> Event {
        try await peer.waitFor("\(name) to become host", timeout: timeout) { $0.type == "host" && $0["host"] == name }
    }

    static func who(_ peer: PeerProcess) async throws -> Event {
        let before = peer.events.filter { $0.type == "members" }.count
        peer.send("/who")
        try await peer.waitFor("/who answer") { _ in peer.events.filter { $0.type == "members" }.count > before }
        return peer.events.last { $0.type == "members" }!
    }

    /// Asks `/who` until the answer satisfies `match` (a peer that just changed rooms shows its old
    /// roster until the new host's welcome reaches it), for at most `timeout`; returns the last answer.
    static func who(_ peer: PeerProcess, becomes match: (Event) -> Bool, timeout: Duration = .seconds(20)) async throws -> Event {
        let deadline = ContinuousClock.now + timeout
        var answer = try await who(peer)
        while !match(answer) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            answer = try await who(peer)
        }
        return answer
    }

    // 1
    @Test func gracefulLeaveHandsTheRoomToTheNextAndANewJoinerGetsTheHistory() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c", "d"])
        defer { lan.down() }
        let (peers, code) = try await Self.room(lan, [("a", "alice"), ("b", "bob"), ("c", "carol")])
        let (alice, bob, carol) = (peers[0], peers[1], peers[2])
        alice.send("one from alice")
        // One line at a time, so the order below is the order they were sent in.
        for peer in peers { try await peer.waitFor("alice's line") { $0.isMessage(from: "alice", text: "one from alice") } }
        bob.send("two from bob")
        for peer in peers { try await peer.waitFor("bob's line") { $0.isMessage(from: "bob", text: "two from bob") } }

        alice.send("/quit")
        #expect(try await alice.waitForExit() == 0)
        for peer in [bob, carol] {
            let change = try await Self.waitForHost(peer, "bob")
            #expect(change["previous"] == "alice" && change.int("epoch") == 2)
        }
        carol.send("three from carol")
        for peer in [bob, carol] { try await peer.waitFor("carol's line") { $0.isMessage(from: "carol", text: "three from carol") } }
        #expect(Self.log(bob) == Self.log(carol))
        #expect(Self.texts(bob) == ["one from alice", "two from bob", "three from carol"])

        // The same code still finds the room, now at bob, with the whole history.
        let dave = try DiscoveryLANTests.join(lan, on: "d", name: "dave", code: code)
        let entered = try await dave.waitFor("dave entered") { $0.type == "entered" }
        #expect(entered.memberNames == ["bob", "carol", "dave"] && entered.hostName == "bob")
        #expect(Self.log(dave) == Self.log(bob))
        #expect(dave.events.filter { $0.type == "message" }.allSatisfy { $0.bool("history") == true })
    }

    // 2
    @Test func aHostKilledUnderLoadLosesNothingAndDoublesNothing() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        let (peers, _) = try await Self.room(lan, [("a", "alice"), ("b", "bob"), ("c", "carol")])
        let (alice, bob, carol) = (peers[0], peers[1], peers[2])
        // 200 messages each at 50/s; alice is killed a second in.
        let count = 200
        let clock = ContinuousClock()
        let start = clock.now
        for i in 1...count {
            bob.send("b\(i)")
            carol.send("c\(i)")
            if i == 50 { alice.signal(SIGKILL) }
            try await Task.sleep(until: start + .milliseconds(20 * i))
        }
        let expected = Set((1...count).flatMap { ["b\($0)", "c\($0)"] })
        for peer in [bob, carol] {
            try await peer.waitFor("every message", timeout: .seconds(30)) { _ in Set(Self.texts(peer)).isSuperset(of: expected) }
        }
        try await Task.sleep(for: .milliseconds(500))
        for peer in [bob, carol] {
            let texts = Self.texts(peer)
            #expect(texts.count == 2 * count, "\(peer.label) showed \(texts.count) messages")
            #expect(Set(texts) == expected)
            let seqs = peer.events.filter { $0.type == "message" }.compactMap { $0.int("seq") }
            #expect(seqs == Array(1...(2 * count)), "\(peer.label): room sequence has gaps or repeats")
        }
        #expect(Self.log(bob) == Self.log(carol))
        _ = try await Self.waitForHost(carol, "bob")
    }

    // 3
    @Test func aHostWhoseCableIsPulledRejoinsTheOneRoomAsAMember() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        let (peers, _) = try await Self.room(lan, [("a", "alice"), ("b", "bob"), ("c", "carol")])
        let (alice, bob, carol) = (peers[0], peers[1], peers[2])
        try await lan.link("a", up: false)
        for peer in [bob, carol] { _ = try await Self.waitForHost(peer, "bob") }
        bob.send("while alice was away")
        try await carol.waitFor("bob's line") { $0.isMessage(from: "bob", text: "while alice was away") }
        // Alone on her side, alice's room lost its members; what she types there must not be lost.
        try await alice.waitFor("carol lost on alice's side") { $0.isPresence("left", "carol") }
        alice.send("typed on the cut-off side")

        try await lan.link("a", up: true)
        try await alice.waitFor("alice moving to bob's room", timeout: .seconds(40)) {
            $0.type == "notice" && ($0["message"] ?? "").contains("moving there")
        }
        for peer in [bob, carol] { try await peer.waitFor("alice back") { $0.isPresence("joined", "alice") } }
        // She keeps her place in the succession (her ordinal); bob hosts. (Her own roster changes
        // when bob's welcome reaches her, which may be a moment after the others hear of her.)
        let rejoined: (Event) -> Bool = { $0.memberNames == ["alice", "bob", "carol"] && $0.hostName == "bob" }
        let members = try await Self.who(alice, becomes: rejoined)
        #expect(rejoined(members), "\(members)")
        for peer in [bob, carol] {
            let late = try await peer.waitFor("alice's late line") { $0.isMessage(from: "alice", text: "typed on the cut-off side") }
            #expect(late.bool("late") == true)
        }
        try await alice.waitFor("what alice missed") { $0.isMessage(from: "bob", text: "while alice was away") }
        carol.send("all together again")
        try await alice.waitFor("carol's line") { $0.isMessage(from: "carol", text: "all together again") }
        #expect(Self.log(bob) == Self.log(carol))
        #expect(Self.texts(alice).filter { $0 == "typed on the cut-off side" }.count == 1)
    }

    // 3b
    @Test func aSplitRoomHealsIntoOneWithBothSidesMessagesAndTheLosingHostsMembersHandedOver() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c", "d"])
        defer { lan.down() }
        let (peers, _) = try await Self.room(lan, [("a", "alice"), ("b", "bob"), ("c", "carol"), ("d", "dave")])
        let (alice, bob, carol, dave) = (peers[0], peers[1], peers[2], peers[3])
        try await lan.split(["c", "d"])
        // alice keeps bob; carol and dave cannot reach either, so carol (next in line on her side,
        // with dave as evidence that her network works) takes over there at epoch 2.
        for peer in [carol, dave] { _ = try await Self.waitForHost(peer, "carol", timeout: .seconds(30)) }
        for peer in [alice, bob] { try await peer.waitFor("dave lost") { $0.isPresence("left", "dave") } }
        bob.send("said on alice's side")
        dave.send("said on carol's side")
        try await alice.waitFor("bob's line") { $0.isMessage(from: "bob", text: "said on alice's side") }
        try await carol.waitFor("dave's line") { $0.isMessage(from: "dave", text: "said on carol's side") }

        try await lan.heal()
        // alice finds carol's stronger claim and hands bob over; both go on in carol's room.
        try await alice.waitFor("alice yielding", timeout: .seconds(40)) {
            $0.type == "notice" && ($0["message"] ?? "").contains("moving there")
        }
        for peer in [carol, dave] {
            for name in ["alice", "bob"] { try await peer.waitFor("\(name) back", timeout: .seconds(30)) { $0.isPresence("joined", name) } }
        }
        for peer in peers {
            let merged: (Event) -> Bool = { Set($0.memberNames) == ["alice", "bob", "carol", "dave"] && $0.hostName == "carol" }
            let members = try await Self.who(peer, becomes: merged)
            #expect(merged(members), "\(peer.label): \(members)")
        }
        for peer in peers {
            try await peer.waitFor("alice's side") { $0.isMessage(from: "bob", text: "said on alice's side") }
            try await peer.waitFor("carol's side") { $0.isMessage(from: "dave", text: "said on carol's side") }
        }
        let late = try await dave.waitFor("the losing side's line") { $0.isMessage(from: "bob", text: "said on alice's side") }
        #expect(late.bool("late") == true)
        alice.send("one room again")
        for peer in peers { try await peer.waitFor("alice's line") { $0.isMessage(from: "alice", text: "one room again") } }
        for peer in peers {
            let texts = Self.texts(peer)
            #expect(Set(texts).count == texts.count, "\(peer.label) showed a message twice: \(texts)")
        }
        #expect(Self.log(carol) == Self.log(dave))
    }

    // 4
    @Test func aSuccessorCutOffAloneDoesNotPromoteItself() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        let (peers, _) = try await Self.room(lan, [("a", "alice"), ("b", "bob"), ("c", "carol")])
        let (alice, bob, carol) = (peers[0], peers[1], peers[2])
        try await lan.link("b", up: false)
        try await carol.waitFor("bob lost") { $0.isPresence("left", "bob") }
        try await bob.waitFor("bob knows he is cut off") {
            $0.type == "notice" && ($0["message"] ?? "").contains("cannot reach anyone")
        }
        bob.send("typed while cut off")
        // Well past the heartbeat bound: bob still has not made a room of his own.
        try await Task.sleep(for: .seconds(3))
        #expect(!bob.events.contains { $0.type == "host" })
        let members = try await Self.who(carol)
        #expect(members.memberNames == ["alice", "carol"] && members.hostName == "alice")

        try await lan.link("b", up: true)
        for peer in [alice, carol] {
            try await peer.waitFor("bob back", timeout: .seconds(30)) { $0.isPresence("joined", "bob") }
            try await peer.waitFor("bob's line") { $0.isMessage(from: "bob", text: "typed while cut off") }
        }
        #expect(!bob.events.contains { $0.type == "host" })
        #expect(Self.log(alice) == Self.log(carol))
    }

    // 5
    @Test func whenHostAndSuccessorDieTogetherTheNextInLineTakesOver() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c", "d"])
        defer { lan.down() }
        let (peers, _) = try await Self.room(lan, [("a", "alice"), ("b", "bob"), ("c", "carol"), ("d", "dave")])
        let (alice, bob, carol, dave) = (peers[0], peers[1], peers[2], peers[3])
        dave.send("before")
        try await carol.waitFor("dave's line") { $0.isMessage(from: "dave", text: "before") }
        alice.signal(SIGKILL)
        bob.signal(SIGKILL)
        for peer in [carol, dave] { _ = try await Self.waitForHost(peer, "carol") }
        dave.send("after")
        try await carol.waitFor("dave's line after") { $0.isMessage(from: "dave", text: "after") }
        let members = try await Self.who(dave)
        #expect(members.memberNames == ["carol", "dave"] && members.hostName == "carol")
        #expect(Self.log(carol) == Self.log(dave))
    }

    // 6
    @Test func threeMigrationsInARowKeepTheHistoryAndTheCode() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c", "d", "e"])
        defer { lan.down() }
        let (peers, code) = try await Self.room(lan, [("a", "alice"), ("b", "bob"), ("c", "carol"), ("d", "dave")])
        let (alice, bob, carol, dave) = (peers[0], peers[1], peers[2], peers[3])
        var said: [String] = []
        func say(_ peer: PeerProcess, _ text: String, seenBy: [PeerProcess]) async throws {
            peer.send(text)
            said.append(text)
            for other in seenBy { try await other.waitFor("'\(text)'") { $0.isMessage(from: peer.label, text: text) } }
        }
        try await say(alice, "m1", seenBy: peers)
        alice.send("/quit")
        _ = try await Self.waitForHost(dave, "bob")
        try await say(bob, "m2", seenBy: [bob, carol, dave])
        bob.signal(SIGKILL)
        _ = try await Self.waitForHost(dave, "carol")
        try await say(carol, "m3", seenBy: [carol, dave])
        carol.send("/quit")
        #expect(try await carol.waitForExit() == 0)
        let last = try await Self.waitForHost(dave, "dave")
        #expect(last.int("epoch") == 4)
        try await say(dave, "m4", seenBy: [dave])

        let erin = try DiscoveryLANTests.join(lan, on: "e", name: "erin", code: code)
        let entered = try await erin.waitFor("erin entered") { $0.type == "entered" }
        #expect(entered.memberNames == ["dave", "erin"] && entered.hostName == "dave")
        #expect(Self.texts(erin) == said)
        #expect(Self.log(erin) == Self.log(dave))
    }

    // 7
    @Test func theLastPeerLeavingAfterMigrationsRemovesTheAdvertisement() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        let (peers, _) = try await Self.room(lan, [("a", "alice"), ("b", "bob")])
        let (alice, bob) = (peers[0], peers[1])
        alice.send("/quit")
        #expect(try await alice.waitForExit() == 0)
        _ = try await Self.waitForHost(bob, "bob")
        // Bob now advertises the room under his own instance, with the new epoch; alice's is gone.
        try await lan.waitForBrowse(on: "c", "only bob's advertisement at epoch 2") { lines in
            !lines.isEmpty && lines.allSatisfy { $0.contains("\"ep=2\"") }
        }
        bob.send("/quit")
        #expect(try await bob.waitForExit() == 0)
        try await lan.waitForBrowse(on: "c", "the room to disappear", timeout: .seconds(10)) { $0.isEmpty }
    }

    // 8
    @Test func aForgedAdvertisementWithAHugeEpochDoesNotStealTheRoom() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c", "f"])
        defer { lan.down() }
        let (peers, code) = try await Self.room(lan, [("a", "alice"), ("b", "bob")])
        let (alice, bob) = (peers[0], peers[1])
        let real = try #require(try await lan.waitForBrowse(on: "f", "the room") { !$0.isEmpty }.first)
        let rid = try #require(real.firstMatch(of: /"rid=([0-9a-f]+)"/)?.1)
        // Mallory copies the public room id, claims a huge epoch, and answers with a room of
        // another code (she knows neither this one nor the room secret).
        let impostor = try lan.peer("impostor", on: "f", ["create", "--name", "mallory", "--no-mdns", "--port", "7777", "--json"])
        try await impostor.waitFor("room") { $0.type == "room" }
        _ = try DiscoveryLANTests.publish(lan, on: "f", name: "lc-\(rid)-00000000", port: 7777,
                                          txt: ["txtvers=2", "pv=5-5", "rid=\(rid)", "ep=999999"])
        try await lan.waitForBrowse(on: "a", "the forged record") { $0.contains { $0.contains("ep=999999") } }
        // The host sees a "higher claim", probes it, and finds it cannot prove the room secret.
        try await Task.sleep(for: .seconds(3))
        #expect(!alice.events.contains { $0.type == "notice" && ($0["message"] ?? "").contains("moving there") })
        #expect(try await Self.who(bob).hostName == "alice")

        // After a migration the new host does not follow it either, and joiners find the real room.
        alice.send("/quit")
        _ = try await Self.waitForHost(bob, "bob")
        try await Task.sleep(for: .seconds(2))
        #expect(!bob.events.contains { $0.type == "notice" && ($0["message"] ?? "").contains("moving there") })
        let carol = try DiscoveryLANTests.join(lan, on: "c", name: "carol", code: code)
        let entered = try await carol.waitFor("carol entered") { $0.type == "entered" }
        #expect(entered.memberNames == ["bob", "carol"] && entered.hostName == "bob")
        #expect(!impostor.events.contains { $0.type == "presence" })
    }
}
