import Foundation
import Testing

/// Rooms and joiners on hosts with no avahi-daemon (issue 19; Docs/TESTING.md, "The simulated
/// LAN"): the peer's own mDNS responder advertises the room, its own browser finds rooms, and
/// either side works with the other side's avahi-daemon.
@Suite(.serialized, .enabled(if: SimulatedLAN.enabled, SimulatedLAN.skipComment), .timeLimit(.minutes(3)))
struct EmbeddedMDNSLANTests {
    /// The resolved lines of levchat rooms whose instance name is `instance`.
    static func lines(_ lines: [String], of instance: String) -> [String] { lines.filter { $0.contains(";\(instance);") } }

    static func instances(_ lines: [String]) -> Set<String> {
        Set(lines.compactMap { line in line.split(separator: ";").dropFirst(3).first.map(String.init) })
    }

    @Test func aRoomMadeWithNoDaemonIsFoundByAvahiJoinedByCodeAndGoneWhenItEnds() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b"])
        defer { lan.down() }
        try await lan.avahi("a", "stop")
        // At debug, alice's log says each goodbye it sent (shown if the room lingers).
        let (alice, code) = try await DiscoveryLANTests.create(lan, on: "a", name: "alice", environment: ["LEVCHAT_LOG": "debug"])
        defer { alice.stop() }
        try await alice.waitForDiagnostic("levchat's own mDNS responder")

        // avahi-browse on b resolves it over both families, with the TXT record Avahi would publish.
        let ipA = try await lan.ip(of: "a")
        let lines = try await lan.waitForBrowse(on: "b", "the room over IPv4 and IPv6") { lines in
            lines.contains { $0.contains(";IPv4;") && $0.contains(";\(ipA);") } && lines.contains { $0.contains(";IPv6;") && $0.contains(";fe80:") }
        }
        for line in lines {
            let keys = Set(line.matches(of: /"([a-z]+)=[^"]*"/).map { String($0.1) })
            #expect(keys == ["txtvers", "pv", "rid", "ep"], "\(line)")
            #expect(line.contains("_levchat._tcp") && !line.contains(code))
        }

        let bob = try DiscoveryLANTests.join(lan, on: "b", name: "bob", code: code)
        try await bob.waitFor("entered") { $0.type == "entered" }
        bob.send("found without a daemon")
        try await alice.waitFor("bob's line") { $0.isMessage(from: "bob", text: "found without a daemon") }

        // A joiner on a (no daemon there either) finds it with levchat's own browser.
        let carol = try DiscoveryLANTests.join(lan, on: "a", name: "carol", code: code)
        try await carol.waitFor("entered") { $0.type == "entered" }
        try await carol.waitForDiagnostic("browsing with levchat's own mDNS")
        carol.send("/quit")
        #expect(try await carol.waitForExit() == 0)

        // The last peer leaves: its goodbye takes the room out of b's cache at once, not after
        // the records' two minutes.
        bob.send("/quit")
        #expect(try await bob.waitForExit() == 0)
        alice.send("/quit")
        #expect(try await alice.waitForExit() == 0)
        #expect(alice.errorText.contains("goodbye 2 of 2 sent on lan0 ipv6"), "\(alice.errorText)")
        do {
            try await lan.waitForBrowse(on: "b", "the room to disappear", timeout: .seconds(10)) { $0.isEmpty }
        } catch {
            Issue.record("alice's log:\n\(alice.errorText.split(separator: "\n").suffix(40).joined(separator: "\n"))")
            throw error
        }
    }

    @Test func twoRoomsOnOneHostWithNoDaemonAreBothFoundAndADaemonStartingLaterAddsNothing() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b"])
        defer { lan.down() }
        try await lan.avahi("a", "stop")
        let (alice, aliceCode) = try await DiscoveryLANTests.create(lan, on: "a", name: "alice")
        defer { alice.stop() }
        let (dave, daveCode) = try await DiscoveryLANTests.create(lan, on: "a", name: "dave")
        defer { dave.stop() }
        let ipA = try await lan.ip(of: "a")
        let both = try await lan.waitForBrowse(on: "b", "both rooms") { lines in
            Self.instances(lines.filter { $0.contains(";IPv4;") && $0.contains(";\(ipA);") }).count == 2
        }
        #expect(Self.instances(both).count == 2)

        // avahi-daemon comes back on a while both rooms live: the rooms stay as they were, one
        // advertisement each (it publishes nothing of theirs), and both are joined by code.
        try await lan.avahi("a", "start")
        try await Task.sleep(for: .seconds(3))
        let after = try await lan.browse(on: "b")
        #expect(Self.instances(after) == Self.instances(both))
        for instance in Self.instances(after) {
            let ipv4 = Self.lines(after, of: instance).filter { $0.contains(";IPv4;") }
            #expect(ipv4.count == 1, "\(instance): \(ipv4)")
        }
        for (name, code, host) in [("bob", aliceCode, alice), ("erin", daveCode, dave)] {
            let member = try DiscoveryLANTests.join(lan, on: "b", name: name, code: code)
            defer { member.stop() }
            try await member.waitFor("entered") { $0.type == "entered" }
            member.send("hello from \(name)")
            try await host.waitFor("\(name)'s line") { $0.isMessage(from: name, text: "hello from \(name)") }
        }
    }

    /// The reverse of the first test, and neither side with a daemon: a joiner with no
    /// avahi-daemon finds a room Avahi advertises, and a room levchat's own responder advertises.
    @Test func aJoinerWithNoDaemonFindsRoomsAdvertisedEitherWay() async throws {
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        try await lan.avahi("b", "stop")
        try await lan.avahi("c", "stop")
        let (alice, aliceCode) = try await DiscoveryLANTests.create(lan, on: "a", name: "alice")
        defer { alice.stop() }
        let (carol, carolCode) = try await DiscoveryLANTests.create(lan, on: "c", name: "carol")
        defer { carol.stop() }
        for (name, code, host) in [("bob", aliceCode, alice), ("dan", carolCode, carol)] {
            let member = try DiscoveryLANTests.join(lan, on: "b", name: name, code: code)
            defer { member.stop() }
            try await member.waitFor("entered") { $0.type == "entered" }
            try await member.waitForDiagnostic("browsing with levchat's own mDNS")
            member.send("hello from \(name)")
            try await host.waitFor("\(name)'s line") { $0.isMessage(from: name, text: "hello from \(name)") }
        }
        // Found is not let in: with a wrong code, both rooms the browser finds refuse it.
        let wrong = aliceCode.hasPrefix("Z") ? "Y" + aliceCode.dropFirst() : "Z" + aliceCode.dropFirst()
        let stranger = try DiscoveryLANTests.join(lan, on: "b", name: "eve", code: String(wrong), timeout: 4)
        #expect(try await stranger.waitForExit() == 65)
    }

    /// `DiscoveryLANTests.anIPv6OnlyLANCreatesJoinsMigratesAndRejoins` with no avahi-daemon on
    /// any host: link-local IPv6 alone, levchat's own mDNS alone. The new host advertises the room
    /// after the crash, and a rejoiner finds it there by code.
    @Test func anIPv6OnlyLANWithNoDaemonCreatesJoinsMigratesAndRejoins() async throws {
        try await DiscoveryLANTests.ipv6OnlyRoom(daemons: false)
    }

    /// `DiscoveryLANTests.aDualStackJoinerMovesOnWhenIPv4IsBlocked` with no avahi-daemon on
    /// either host: the browser reports the room on both families, IPv4 fails, IPv6 gets in.
    @Test func aDualStackJoinerWithNoDaemonMovesOnWhenIPv4IsBlocked() async throws {
        try await DiscoveryLANTests.dualStackJoinWithIPv4Blocked(daemons: false)
    }
}
