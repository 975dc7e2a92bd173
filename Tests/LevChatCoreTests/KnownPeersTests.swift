import Testing
@testable import LevChatCore

@Suite struct KnownPeersTests {
    @Test func aNameIsRememberedWithItsFirstKeyAndAnotherKeyIsAChange() {
        var peers = KnownPeers()
        #expect(peers.meet(name: "bob", node: node(2), today: "2026-12-01") == .new)
        #expect(peers.meet(name: "bob", node: node(2), today: "2026-12-05") == .known)
        #expect(peers.meet(name: "bob", node: node(3), today: "2026-12-05") == .changed(previous: node(2).hex, since: "2026-12-01"))
        // A look-alike of the name is the same entry.
        #expect(peers.meet(name: "B0B", node: node(3), today: "2026-12-05") == .changed(previous: node(2).hex, since: "2026-12-01"))
        // The change is not written over the first key.
        #expect(peers.entry(for: "bob")?.fingerprint == node(2).hex)
    }

    @Test func theFileRoundTripsAndSkipsWhatIsNotAnEntry() {
        var peers = KnownPeers()
        _ = peers.meet(name: "bob smith", node: node(2), today: "2026-12-01")
        _ = peers.meet(name: "alice", node: node(1), today: "2026-12-02")
        let text = peers.text + "garbage\n\(node(3).hex) 2026-12-03 a\u{1B}b\nnothex 2026-12-03 carol\n"
        let read = KnownPeers(parsing: text)
        #expect(read.entries.count == 2)
        #expect(read.entry(for: "bob smith") == KnownPeers.Entry(name: "bob smith", fingerprint: node(2).hex, since: "2026-12-01"))
    }

    @Test func fingerprintsReadAloudInGroups() {
        let id = NodeID(hex: "00112233445566778899aabbccddeeff")!
        #expect(Fingerprint.full(id) == "0011 2233 4455 6677 8899 aabb ccdd eeff")
        #expect(Fingerprint.short(id) == "00112233")
    }
}

@Suite struct RunSequenceTests {
    /// A persistent identity's next run numbers its lines in a new block: none of its ids is
    /// taken for one of the last run's, and gaps stay bounded.
    @Test func aNewRunsLinesAreNotDuplicatesOfTheLastRuns() {
        var log = RoomLog()
        let sender = node(2)
        let first = RunSequence.first(wallMillis: 1_700_000_000_000)
        let second = RunSequence.first(wallMillis: 1_700_000_060_000)
        for seq in first..<(first + 50) { _ = log.sequence(id: MessageID(node: sender, seq: seq), from: "bob", text: "run 1", time: 0) }
        for seq in second..<(second + 50) {
            #expect(!log.isDuplicate(MessageID(node: sender, seq: seq)))
            _ = log.sequence(id: MessageID(node: sender, seq: seq), from: "bob", text: "run 2", time: 0)
        }
        #expect(log.isDuplicate(MessageID(node: sender, seq: first + 10)) && log.isDuplicate(MessageID(node: sender, seq: second + 49)))
        #expect(!log.isDuplicate(MessageID(node: sender, seq: second + 50)))
    }

    @Test func outOfOrderIdsAreKeptUntilTheWindowIsFull() {
        var seen = SeenMessages()
        let sender = node(2)
        seen.insert(MessageID(node: sender, seq: 3))
        #expect(!seen.contains(MessageID(node: sender, seq: 2)))
        seen.insert(MessageID(node: sender, seq: 1))
        seen.insert(MessageID(node: sender, seq: 2))
        #expect(seen.contains(MessageID(node: sender, seq: 3)))
        // Past the window, the oldest gap is given up: memory stays bounded.
        for seq in 10..<(10 + SeenMessages.maximumAbove + 1) { seen.insert(MessageID(node: sender, seq: seq)) }
        #expect(seen.contains(MessageID(node: sender, seq: 5)))
    }
}
