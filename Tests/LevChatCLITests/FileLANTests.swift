import Foundation
import LevChatCore
import Testing

/// Files on the simulated LAN (Docs/CLI.md, "Files"): peers in network namespaces of their own,
/// found through their avahi-daemons, the file going straight from the sender's host to the
/// receiver's over the bridge.
@Suite(.serialized, .enabled(if: SimulatedLAN.enabled, SimulatedLAN.skipComment), .timeLimit(.minutes(3)))
struct FileLANTests {
    /// A member on another host fetches the host's file; the sender's cable is pulled for three
    /// seconds halfway (shorter than a room link's dead time, so the room stays as it is): the
    /// transfer stalls, goes on by itself when the cable is back, and the file arrives whole.
    /// A third member that joined by code gets it too, from the same sender, at the same time.
    @Test func aTransferGoesOnAfterTheSendersCableIsPulledForAFewSeconds() async throws {
        let source = try FileTransferTests.folder("source"), bobs = try FileTransferTests.folder("bob"),
            carols = try FileTransferTests.folder("carol")
        defer { FileTransferTests.remove(source, bobs, carols) }
        let file = source + "/lan.bin"
        try FileTransferTests.randomFile(at: file, size: 12_000_000, seed: 9)
        let lan = try await SimulatedLAN(hosts: ["a", "b", "c"])
        defer { lan.down() }
        // alice serves at 2 MB/s: six seconds, so the cable is pulled in the middle. Links are
        // dead after 10 s here, so that three seconds without a heartbeat (and TCP's backed-off
        // retransmission after it) do not change the room's host: this is about the transfer.
        let timing = ["LEVCHAT_DEAD_AFTER_MS": "10000"]
        let (alice, code) = try await DiscoveryLANTests.create(lan, on: "a", name: "alice",
                                                              environment: timing.merging(["LEVCHAT_FILE_RATE_BYTES": "2000000"]) { $1 })
        let bob = try DiscoveryLANTests.join(lan, on: "b", name: "bob", code: code, extra: ["--downloads", bobs], environment: timing)
        let carol = try DiscoveryLANTests.join(lan, on: "c", name: "carol", code: code, extra: ["--downloads", carols], environment: timing)
        for peer in [bob, carol] { try await peer.waitFor("entered") { $0.type == "entered" } }
        alice.send("/send \(file)")
        for peer in [bob, carol] {
            _ = try await FileTransferTests.offer(at: peer, named: "lan.bin")
            peer.send("/get 1")
        }
        try await bob.waitFor("bytes arriving") { $0.type == "transfer" && ($0.int("bytes") ?? 0) > 0 }
        try await lan.link("a", up: false)
        try await Task.sleep(for: .seconds(3))
        try await lan.link("a", up: true)
        let expected = try FileTransferTests.sha256(file)
        for (peer, folder) in [(bob, bobs), (carol, carols)] {
            let done = try await FileTransferTests.received(at: peer, id: 1, timeout: .seconds(90))
            #expect(done["sha256"] == expected)
            #expect(try FileTransferTests.sha256(folder + "/lan.bin") == expected)
        }
        // The room itself never noticed: nobody left, the host is still alice.
        for peer in [bob, carol] {
            #expect(!peer.events.contains { $0.type == "host" || ($0.type == "presence" && $0["event"] == "left") }, "\(peer.transcript)")
        }
    }
}
