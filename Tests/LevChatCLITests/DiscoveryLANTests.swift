import Foundation
import Testing

/// Discovery on the simulated LAN: real binaries, real avahi-daemons, real multicast between
/// network namespaces (Docs/TESTING.md, "The simulated LAN").
@Suite(.serialized, .enabled(if: SimulatedLAN.enabled, SimulatedLAN.skipComment), .timeLimit(.minutes(3)))
struct DiscoveryLANTests {
    /// `create` with mDNS on `host`; returns the process and its code.
    static func create(_ lan: SimulatedLAN, on host: String, name: String, extra: [String] = [],
                       environment: [String: String] = [:]) async throws -> (PeerProcess, String) {
        let peer = try lan.peer(name, on: host, ["create", "--name", name, "--json"] + extra, environment: environment)
        let room = try await peer.waitFor("room event") { $0.type == "room" }
        return (peer, try #require(room["code"]))
    }

    /// `join CODE` on `host`. The search timeout is generous: a busy CI machine can be slow to hear
    /// a fresh announcement, and this is not a timing test.
    static func join(_ lan: SimulatedLAN, on host: String, name: String, code: String, timeout: Int = 15,
                     extra: [String] = [], environment: [String: String] = [:]) throws -> PeerProcess {
        try lan.peer(name, on: host, ["join", code, "--name", name, "--json", "--timeout", String(timeout)] + extra, environment: environment)
    }

    @Test func membersJoinByCodeAloneAndChatEveryWay() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        let (alice, code) = try await Self.create(lan, on: "a", name: "alice")
        let bob = try Self.join(lan, on: "b", name: "bob", code: code)
        try await bob.waitFor("entered") { $0.type == "entered" }
        let carol = try Self.join(lan, on: "c", name: "carol", code: code.lowercased())
        try await carol.waitFor("entered") { $0.type == "entered" }
        for peer in [alice, bob] { try await peer.waitFor("carol entering") { $0.isPresence("joined", "carol") } }

        alice.send("from a")
        bob.send("from b")
        carol.send("from c")
        for peer in [alice, bob, carol] {
            for (from, text) in [("alice", "from a"), ("bob", "from b"), ("carol", "from c")] {
                try await peer.waitFor("\(from)'s message") { $0.isMessage(from: from, text: text) }
            }
            peer.send("/who")
            let members = try await peer.waitFor("/who") { $0.type == "members" }
            #expect(members.memberNames == ["alice", "bob", "carol"])
            #expect(members.hostName == "alice")
        }
        carol.send("/quit")
        #expect(try await carol.waitForExit() == 0)
        try await alice.waitFor("carol leaving") { $0.isPresence("left", "carol") }
        try await bob.waitFor("carol leaving") { $0.isPresence("left", "carol") }
    }

    /// Churn and places per address (Docs/THREAT-MODEL.md, "Churn and places"), between real
    /// addresses: here at most 2 places and 4 arrivals a minute for one address (the defaults are
    /// 64 and 30). Host b's third member is refused for places; once one left, b's joins go on
    /// until its fifth arrival in the minute; host c is never affected.
    @Test func oneAddressGetsItsShareOfPlacesAndOfJoins() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        let (alice, code) = try await Self.create(lan, on: "a", name: "alice",
                                                  environment: ["LEVCHAT_PLACES_PER_ADDRESS": "2", "LEVCHAT_JOINS_PER_ADDRESS": "4"])
        defer { alice.stop() }
        // Over IPv4 every time: a machine's IPv4 address and its IPv6 addresses are separate
        // sources, and discovery may pick either.
        let port = try #require(alice.events.first { $0.type == "room" }?.int("port"))
        let at = ["--peer", "\(try await lan.ip(of: "a")):\(port)"]
        func enter(_ name: String, on host: String) async throws -> PeerProcess {
            let peer = try Self.join(lan, on: host, name: name, code: code, extra: at)
            try await peer.waitFor("\(name) entering") { $0.type == "entered" }
            return peer
        }
        func refused(_ name: String, on host: String, saying words: String) async throws {
            let peer = try Self.join(lan, on: host, name: name, code: code, extra: at)
            defer { peer.stop() }
            #expect(try await peer.waitForExit() == 67)
            #expect(peer.events.contains { $0.type == "error" && ($0["message"] ?? "").contains(words) }, "\(peer.events)")
        }
        let bob = try await enter("bob", on: "b")
        defer { bob.stop() }
        let carol = try await enter("carol", on: "b")
        try await refused("dave", on: "b", saying: "at most 2 members from one address")
        let erin = try await enter("erin", on: "c")
        defer { erin.stop() }
        carol.send("/quit")
        #expect(try await carol.waitForExit() == 0)
        try await alice.waitFor("carol leaving") { $0.isPresence("left", "carol") }
        for name in ["frank", "grace"] {  // b's third and fourth arrivals this minute
            let peer = try await enter(name, on: "b")
            peer.send("/quit")
            #expect(try await peer.waitForExit() == 0)
            try await alice.waitFor("\(name) leaving") { $0.isPresence("left", name) }
        }
        try await refused("heidi", on: "b", saying: "too many joins from your address")
        // The room went on throughout.
        bob.send("still here")
        try await erin.waitFor("bob's line") { $0.isMessage(from: "bob", text: "still here") }
    }

    @Test func avahiBrowseSeesTheRoomButNeitherCodeNorNames() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "c"])
        defer { lan.down() }
        let (alice, code) = try await Self.create(lan, on: "a", name: "alice")
        defer { alice.stop() }
        let lines = try await lan.waitForBrowse(on: "c", "the room") { !$0.isEmpty }
        let everything = lines.joined(separator: "\n")
        for key in ["\"txtvers=2\"", "\"pv=5-5\"", "\"rid=", "\"ep=1\""] {
            #expect(everything.contains(key), "\(key) missing in \(everything)")
        }
        // Exactly those four keys: nothing else, so nothing derived from the code.
        for line in lines {
            let keys = Set(line.matches(of: /"([a-z]+)=[^"]*"/).map { String($0.1) })
            #expect(keys == ["txtvers", "pv", "rid", "ep"], "\(line)")
        }
        #expect(lines.allSatisfy { $0.contains("_levchat._tcp") && $0.contains(";lc-") })
        let canonical = code.replacingOccurrences(of: "-", with: "")
        for secret in [code, canonical, canonical.lowercased(), "alice"] {
            #expect(!everything.contains(secret), "\(secret) is visible in the advertisement")
        }
    }

    @Test func aWrongCodeIsRefusedByTheRoomAndSaysSo() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b"])
        defer { lan.down() }
        let (alice, code) = try await Self.create(lan, on: "a", name: "alice")
        defer { alice.stop() }
        try await lan.waitForBrowse(on: "b", "the room") { !$0.isEmpty }
        let wrong = code.hasPrefix("Z") ? "Y" + code.dropFirst() : "Z" + code.dropFirst()
        let mallory = try Self.join(lan, on: "b", name: "mallory", code: String(wrong), timeout: 2)
        #expect(try await mallory.waitForExit() == 65)
        // One room, however many of its addresses were tried (it said "none of the 2 rooms" when
        // the room was tried at its IPv4 and IPv6 addresses at once).
        #expect(mallory.events.contains { $0.type == "error" && ($0["message"] ?? "").contains("wrong room code: the room on this network did not accept it") },
                "\(mallory.transcript)")
        #expect(!alice.events.contains { $0.isPresence("joined", "mallory") })
        // One failed attempt is not worth the host's user's attention (joiners of other rooms try us
        // too): no notice, and its log line is at info, below what a user sees by default.
        #expect(!alice.events.contains { $0.type == "notice" && ($0["message"] ?? "").contains("failed to prove") })
        #expect(alice.errorText.contains("info levchat: refused connection") && !alice.errorText.contains("notice levchat: refused connection"),
                "\(alice.errorText)")
    }

    @Test func threeRoomsOnOneLANAndJoinByCodeFindsTheRightOne() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c", "d"])
        defer { lan.down() }
        let (alice, _) = try await Self.create(lan, on: "a", name: "alice")
        let (bob, _) = try await Self.create(lan, on: "b", name: "bob")
        let (carol, code) = try await Self.create(lan, on: "c", name: "carol")
        try await lan.waitForBrowse(on: "d", "three rooms") { $0.count >= 3 }
        // The code comes from the environment, as a user who keeps it out of `ps` would give it.
        let dave = try lan.peer("dave", on: "d", ["join", "--name", "dave", "--json", "--timeout", "15"],
                                environment: ["LEVCHAT_CODE": code])
        let entered = try await dave.waitFor("entered") { $0.type == "entered" }
        #expect(entered.memberNames == ["carol", "dave"] && entered.hostName == "carol")
        dave.send("found you")
        try await carol.waitFor("dave's line") { $0.isMessage(from: "dave", text: "found you") }
        // The other rooms saw at most one failed proof each and said nothing to their users.
        for other in [alice, bob] {
            #expect(!other.events.contains { $0.type == "notice" || $0.isPresence("joined", "dave") }, "\(other.label): \(other.events)")
        }
    }

    @Test func twoRoomsCreatedAtTheSameMomentBothWorkAndNeverMix() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c", "d"])
        defer { lan.down() }
        async let first = Self.create(lan, on: "a", name: "alice")
        async let second = Self.create(lan, on: "b", name: "bob")
        let ((alice, codeA), (bob, codeB)) = try await (first, second)
        #expect(codeA != codeB)
        let carol = try Self.join(lan, on: "c", name: "carol", code: codeA)
        let dave = try Self.join(lan, on: "d", name: "dave", code: codeB)
        for peer in [carol, dave] { try await peer.waitFor("entered") { $0.type == "entered" } }
        carol.send("in room A")
        dave.send("in room B")
        try await alice.waitFor("carol's message") { $0.isMessage(from: "carol", text: "in room A") }
        try await bob.waitFor("dave's message") { $0.isMessage(from: "dave", text: "in room B") }
        for (peer, expected) in [(alice, ["alice", "carol"]), (carol, ["alice", "carol"]), (bob, ["bob", "dave"]), (dave, ["bob", "dave"])] {
            peer.send("/who")
            let members = try await peer.waitFor("/who") { $0.type == "members" }
            #expect(members.memberNames == expected)
        }
        #expect(!alice.events.contains { $0.type == "message" && $0["text"] == "in room B" })
        #expect(!bob.events.contains { $0.type == "message" && $0["text"] == "in room A" })
    }

    @Test func whenTheHostLeavesTheAdvertisementIsGone() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "c"])
        defer { lan.down() }
        let (alice, _) = try await Self.create(lan, on: "a", name: "alice")
        try await lan.waitForBrowse(on: "c", "the room") { !$0.isEmpty }
        alice.send("/quit")
        #expect(try await alice.waitForExit() == 0)
        try await lan.waitForBrowse(on: "c", "the room to disappear", timeout: .seconds(10)) { $0.isEmpty }
    }

    /// Without avahi-daemon a joiner still finds the room by code (levchat's own mDNS,
    /// `EmbeddedMDNSLANTests`), and --peer works with no mDNS at all.
    @Test func withoutAvahiDaemonJoinFindsTheRoomAndPeerStillWorks() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b"])
        defer { lan.down() }
        let (alice, code) = try await Self.create(lan, on: "a", name: "alice")
        defer { alice.stop() }
        try await lan.avahi("b", "stop")

        let joiner = try Self.join(lan, on: "b", name: "bea", code: code)
        try await joiner.waitFor("entered") { $0.type == "entered" }
        try await joiner.waitForDiagnostic("browsing with levchat's own mDNS")
        joiner.send("/quit")
        #expect(try await joiner.waitForExit() == 0)

        let port = try #require(alice.events.first { $0.type == "room" }?.int("port"))
        let direct = try Self.join(lan, on: "b", name: "bob", code: code, extra: ["--peer", "\(try await lan.ip(of: "a")):\(port)"])
        try await direct.waitFor("entered") { $0.type == "entered" }
        direct.send("no mDNS needed")
        try await alice.waitFor("bob's message") { $0.isMessage(from: "bob", text: "no mDNS needed") }
        direct.send("/quit")
        #expect(try await direct.waitForExit() == 0)
    }

    @Test func forgedAdvertisementsAreIgnoredOrFailAuthentication() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        let (alice, code) = try await Self.create(lan, on: "a", name: "alice")
        defer { alice.stop() }
        let real = try #require(try await lan.waitForBrowse(on: "c", "the room") { !$0.isEmpty }.first)
        let rid = try #require(real.firstMatch(of: /"rid=([0-9a-f]+)"/)?.1)

        // On c: an impostor room (another code) to answer connections, a record of a made-up room
        // with a huge epoch, and one that copies the real room id with a huge epoch but points at
        // the impostor.
        let impostor = try lan.peer("impostor", on: "c", ["create", "--name", "eve", "--no-mdns", "--port", "7777", "--json"])
        defer { impostor.stop() }
        try await impostor.waitFor("room") { $0.type == "room" }
        let made = try Self.publish(lan, on: "c", name: "lc-0000000000000000-eve", port: 7777,
                                    txt: ["txtvers=2", "pv=5-5", "rid=0000000000000000", "ep=999999"])
        let copied = try Self.publish(lan, on: "c", name: "lc-\(rid)-evecopy", port: 7777,
                                      txt: ["txtvers=2", "pv=5-5", "rid=\(rid)", "ep=999999"])
        _ = (made, copied)
        try await lan.waitForBrowse(on: "b", "all three records") { $0.count >= 3 }

        let bob = try Self.join(lan, on: "b", name: "bob", code: code)
        try await bob.waitFor("entered") { $0.type == "entered" }
        bob.send("/who")
        let members = try await bob.waitFor("/who") { $0.type == "members" }
        #expect(members.memberNames == ["alice", "bob"])
        try await alice.waitFor("bob entering") { $0.isPresence("joined", "bob") }
        #expect(!impostor.events.contains { $0.isPresence("joined", "bob") })
    }

    @Test func theRoomSurvivesTheDaemonRestartingAndIsAdvertisedAgain() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        let (alice, code) = try await Self.create(lan, on: "a", name: "alice")
        let bob = try Self.join(lan, on: "b", name: "bob", code: code)
        try await bob.waitFor("entered") { $0.type == "entered" }
        try await lan.avahi("a", "stop")
        bob.send("while avahi is down")
        try await alice.waitFor("bob's message") { $0.isMessage(from: "bob", text: "while avahi is down") }
        try await lan.waitForBrowse(on: "c", "the record gone with the daemon") { $0.isEmpty }
        try await lan.avahi("a", "start")
        let carol = try Self.join(lan, on: "c", name: "carol", code: code)
        try await carol.waitFor("entered") { $0.type == "entered" }
        try await bob.waitFor("carol entering") { $0.isPresence("joined", "carol") }
    }

    @Test func ipv6LinkLocalOnlyRoomsAreFoundAndJoined() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b"])
        defer { lan.down() }
        for host in ["a", "b"] {
            let (status, output) = try await lan.run(on: host, ["ip", "-4", "addr", "flush", "dev", "lan0"])
            #expect(status == 0, "\(output)")
        }
        // No --bind: the default listener takes IPv6 as well as IPv4.
        let (alice, code) = try await Self.create(lan, on: "a", name: "alice")
        defer { alice.stop() }
        // The premise: b can only learn IPv6 link-local addresses for the room.
        let resolved = try await lan.waitForBrowse(on: "b", "the room") { !$0.isEmpty }
        #expect(resolved.allSatisfy { $0.contains(";fe80:") && !$0.contains(";10.77.") }, "\(resolved)")
        let bob = try Self.join(lan, on: "b", name: "bob", code: code)
        try await bob.waitFor("entered") { $0.type == "entered" }
        bob.send("over IPv6")
        try await alice.waitFor("bob's message") { $0.isMessage(from: "bob", text: "over IPv6") }
        #expect(bob.errorText.isEmpty || !bob.errorText.contains("could not reach"))
    }

    /// An IPv6-only LAN (link-local addresses alone), with the default listener: members reach
    /// each other at the endpoints of the roster (another machine's interface name in their scope
    /// is replaced by this machine's), the room survives its host's death, and a newcomer joins
    /// the promoted host by code.
    @Test func anIPv6OnlyLANCreatesJoinsMigratesAndRejoins() async throws {
        try await Self.ipv6OnlyRoom(daemons: true)
    }

    /// Three hosts with link-local IPv6 alone: create, join by code, the host killed and the next
    /// taking over (and advertising), a rejoin by code. `daemons` false: avahi-daemon stopped
    /// everywhere, so levchat's own mDNS does it all (`EmbeddedMDNSLANTests`).
    static func ipv6OnlyRoom(daemons: Bool) async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        for host in ["a", "b", "c"] {
            if !daemons { try await lan.avahi(host, "stop") }
            let (status, output) = try await lan.run(on: host, ["ip", "-4", "addr", "flush", "dev", "lan0"])
            #expect(status == 0, "\(output)")
        }
        let (peers, code) = try await MigrationLANTests.room(lan, [("a", "alice"), ("b", "bob"), ("c", "carol")])
        let (alice, bob, carol) = (peers[0], peers[1], peers[2])
        defer { for peer in peers { peer.stop() } }
        if !daemons { try await carol.waitForDiagnostic("browsing with levchat's own mDNS") }
        bob.send("before")
        try await carol.waitFor("bob's line") { $0.isMessage(from: "bob", text: "before") }
        alice.killNow()
        _ = try await MigrationLANTests.waitForHost(bob, "bob")
        _ = try await MigrationLANTests.waitForHost(carol, "bob")
        if !daemons { try await bob.waitForDiagnostic("levchat's own mDNS responder") }
        carol.send("after, over link-local")
        try await bob.waitFor("carol's line") { $0.isMessage(from: "carol", text: "after, over link-local") }
        let dave = try Self.join(lan, on: "a", name: "dave", code: code)
        defer { dave.stop() }
        try await dave.waitFor("dave entered") { $0.type == "entered" }
        dave.send("dave is in")
        try await carol.waitFor("dave's line") { $0.isMessage(from: "dave", text: "dave is in") }
        #expect(MigrationLANTests.texts(dave).starts(with: ["before", "after, over link-local"]))
    }

    /// Dual stack with IPv4 broken between a and b (a blackhole route on b): b's joiner finds
    /// the room's IPv4 and IPv6 addresses, the IPv4 one fails, and it gets in over IPv6.
    @Test func aDualStackJoinerMovesOnWhenIPv4IsBlocked() async throws {
        try await Self.dualStackJoinWithIPv4Blocked(daemons: true)
    }

    static func dualStackJoinWithIPv4Blocked(daemons: Bool) async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b"])
        defer { lan.down() }
        if !daemons {
            try await lan.avahi("a", "stop")
            try await lan.avahi("b", "stop")
        }
        let aIPv4 = try await lan.ip(of: "a")
        let (status, output) = try await lan.run(on: "b", ["ip", "route", "add", "blackhole", "\(aIPv4)/32"])
        #expect(status == 0, "\(output)")
        let (alice, code) = try await Self.create(lan, on: "a", name: "alice")
        defer { alice.stop() }
        let bob = try Self.join(lan, on: "b", name: "bob", code: code)
        defer { bob.stop() }
        try await bob.waitFor("bob entered") { $0.type == "entered" }
        if !daemons { try await bob.waitForDiagnostic("browsing with levchat's own mDNS") }
        bob.send("over IPv6")
        try await alice.waitFor("bob's line") { $0.isMessage(from: "bob", text: "over IPv6") }
    }

    @Test func doctorShowsTheDaemonInterfacesAndRoomsButNoCode() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b"])
        defer { lan.down() }
        let (_, code) = try await Self.create(lan, on: "a", name: "alice")
        try await lan.waitForBrowse(on: "b", "the room") { !$0.isEmpty }
        let doctor = try lan.peer("doctor", on: "b", ["doctor", "--listen", "2"])
        #expect(try await doctor.waitForExit() == 0)
        let text = doctor.outputLines.joined(separator: "\n")
        #expect(text.contains("avahi-daemon: running"))
        #expect(text.contains("discovery: through avahi-daemon"))
        #expect(text.contains("discovery: through avahi-daemon"))
        #expect(text.contains("lan0: up, multicast"))
        #expect(text.contains("rooms visible now (1 advertisement"))
        #expect(text.contains("\(lan.prefix)-a.local \(try await lan.ip(of: "a")):"))
        #expect(text.contains("UDP 5353"))
        #expect(!text.contains(code) && !text.contains(code.replacingOccurrences(of: "-", with: "")) && !text.contains("alice"))

        // Without the daemon: levchat's own mDNS, which sees the room as well.
        try await lan.avahi("b", "stop")
        // With the log level a user has (the tests' peers log at info): nothing on stderr but
        // what is wrong, and here nothing is.
        let without = try lan.peer("doctor", on: "b", ["doctor", "--listen", "2"], environment: ["LEVCHAT_LOG": ""])
        #expect(try await without.waitForExit() == 0)
        #expect(without.errorText.isEmpty, "\(without.errorText)")
        let withoutText = without.outputLines.joined(separator: "\n")
        #expect(withoutText.contains("avahi-daemon: not available"))
        #expect(withoutText.contains("discovery: levchat's own mDNS"))
        let ipA = try await lan.ip(of: "a")
        #expect(withoutText.contains("rooms visible now (") && withoutText.contains("\(ipA):"))
    }

    /// `avahi-publish` on `host`, running until the LAN goes down.
    static func publish(_ lan: SimulatedLAN, on host: String, name: String, port: Int, txt: [String]) throws -> PeerProcess {
        try lan.background("publish-\(name)", on: host, ["avahi-publish", "-s", name, "_levchat._tcp", String(port)] + txt)
    }
}
