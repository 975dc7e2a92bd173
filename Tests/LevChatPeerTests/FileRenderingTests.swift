import Foundation
@testable import LevChatCore
import Testing
@testable import LevChatPeer

/// Offers to one member as each side reads them, and which machines get AES-256-GCM for files.
@Suite struct FileRenderingTests {
    static let hash = String(repeating: "3f", count: 32)

    func entry(to recipient: NodeID?, recipientName: String?, toViewer: Bool) -> FileBoard.Entry {
        var entry = FileBoard.Entry(id: 3, offer: FileOffer(file: String(repeating: "ab", count: 16), name: "report.pdf", size: 2_400_000,
                                                            sha256: Self.hash, to: recipient),
                                    from: "bob", sender: NodeID.random(), open: true)
        entry.recipientName = recipientName
        entry.toViewer = toViewer
        return entry
    }

    /// A status row on a narrow screen keeps its figures and cuts the name; wide enough, it is
    /// whole; too narrow for even the figures, the whole row is cut. Never wider than asked.
    @Test func aStatusRowCutsTheNameBeforeTheFigures() {
        var long = entry(to: nil, recipientName: nil, toViewer: false)
        long.offer.name = "a very long file name for the narrow terminal test.bin"
        let row = Console.status(long, bytes: 1_200_000, rate: 400_000)
        let figures = "  50 %  1.2 MB of 2.4 MB  400.0 kB/s  0:03 left"
        #expect(row.head.rendered == "⇣ a very long file name for the narrow terminal test.bin" && row.tail.rendered == figures)
        #expect(TerminalScreen.fit(row, columns: 200) == row.head.rendered + figures)
        let narrow = TerminalScreen.fit(row, columns: 60)
        #expect(narrow == "⇣ a very lon…" + figures)
        #expect(TerminalScreen.fit(Console.status(long, to: "bob", bytes: 1_200_000, rate: 400_000), columns: 60) == "⇡ a very lon…" + figures)
        for columns in 1...120 { #expect(DisplayWidth.of(TerminalScreen.fit(row, columns: columns)) <= columns, "\(columns)") }
        #expect(TerminalScreen.fit(row, columns: 30) == "⇣ a very long file name for t…")
    }

    /// For every screen height and every number of transfers and lines on their way: the bottom
    /// area takes at most half the screen; all of it when it fits; else its first rows and one
    /// that counts exactly what is not shown.
    @Test func theBottomAreaNeverTakesMoreThanHalfTheScreen() {
        for screenRows in 1...40 {
            for statusCount in 0...12 {
                for pendingCount in 0...12 {
                    let status = (0..<statusCount).map { "⇣ f\($0).bin" }, pending = (0..<pendingCount).map { "[sending…] line \($0)" }
                    let shown = TerminalScreen.shown(status: status, pending: pending, screenRows: screenRows, columns: 80)
                    #expect(shown.count <= screenRows / 2)
                    if statusCount + pendingCount <= screenRows / 2 {
                        #expect(shown == status + pending)
                        continue
                    }
                    guard let summary = shown.last else { continue }
                    let kept = shown.dropLast()
                    #expect(Array(kept) == Array((status + pending).prefix(kept.count)))
                    let hiddenStatus = statusCount - kept.filter { $0.hasPrefix("⇣") }.count
                    let hiddenPending = pendingCount - kept.filter { $0.hasPrefix("[sending") }.count
                    #expect(summary.contains(" \(hiddenStatus) more transfer") == (hiddenStatus > 0), "\(summary)")
                    #expect(summary.contains(" \(hiddenPending) more line") == (hiddenPending > 0), "\(summary)")
                }
            }
        }
        #expect(TerminalScreen.shown(status: ["a", "b", "c"], pending: ["d"], screenRows: 6, columns: 80) == ["a", "b", "… 1 more transfer, 1 more line on the way"])
    }

    @Test func anOfferToOneMemberSaysSoOnBothSides() throws {
        let carol = NodeID.random()
        let text = TextRenderer(look: .plain)
        let toCarol = entry(to: carol, recipientName: "carol", toViewer: true)
        #expect(text.file(.offered(toCarol, replayed: false, own: false)).first?.text.rendered.hasSuffix("* bob offers you report.pdf (2.4 MB, sha256 3f3f3f3f…) — /get 3") == true)
        let fromBob = entry(to: carol, recipientName: "carol", toViewer: false)
        #expect(text.file(.offered(fromBob, replayed: false, own: true)).first?.text.rendered
                == "* you offer carol report.pdf (2.4 MB, sha256 3f3f3f3f…) as 3; only carol can /get 3")
        #expect(text.file(.list([toCarol])).last?.text.rendered == "  3  report.pdf  2.4 MB  from bob  (to you)")
        // A folder is listed as it was offered, with its slash.
        var folder = entry(to: nil, recipientName: nil, toViewer: false)
        folder.offer.folder = true
        #expect(text.file(.list([folder])).last?.text.rendered == "  3  report.pdf/  2.4 MB  from bob")
        let roomWide = entry(to: nil, recipientName: nil, toViewer: false)
        #expect(text.file(.offered(roomWide, replayed: false, own: false)).first?.text.rendered.hasSuffix("* bob offers report.pdf (2.4 MB, sha256 3f3f3f3f…) — /get 3") == true)
        // An offer shows the time it was made, also when shown again from the history.
        var older = roomWide
        older.time = 1_700_000_000_000 + 7_000  // 22:13:27 UTC
        #expect(text.file(.offered(older, replayed: true, own: false)).first?.text.rendered.hasPrefix(Timestamp.clock(older.time)) == true)
        #expect(Timestamp.clock(older.time) != Timestamp.clock(older.time + 60_000))
        let json = JSONRenderer()
        let olderLine = try #require(json.file(.offered(older, replayed: true, own: false)).first).text.rendered
        #expect(olderLine.contains("\"time\":\"\(Timestamp.iso8601(older.time))\""), "\(olderLine)")
        for (offer, to) in [(toCarol, "carol" as String?), (roomWide, nil)] {
            let line = try #require(json.file(.offered(offer, replayed: false, own: false)).first).text.rendered
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["to"] as? String == to)
            #expect(object.keys.contains("to"), "to is there, null for the room")
        }
        let sent = try #require(json.file(.sent(name: "report.pdf", id: 3, to: "carol", address: "10.0.0.7")).first).text.rendered
        #expect(sent.contains("\"to\":\"carol\"") && sent.contains("\"address\":\"10.0.0.7\""))
        #expect(text.file(.sent(name: "report.pdf", id: 3, to: "carol", address: "10.0.0.7")).first?.text.rendered == "* sent report.pdf to carol (10.0.0.7)")
    }

    @Test func aesIsChosenOnlyWithItsInstructions() {
        #expect(FileCipher.hasHardwareAES(cpuinfo: "processor\t: 0\nflags\t\t: fpu sse2 aes avx2 pclmulqdq sha_ni\n"))
        #expect(FileCipher.hasHardwareAES(cpuinfo: "processor\t: 0\nFeatures\t: fp asimd aes pmull sha1 sha2 crc32\n"))
        #expect(!FileCipher.hasHardwareAES(cpuinfo: "flags\t\t: fpu sse2 avx2 pclmulqdq\n"))  // no aes
        #expect(!FileCipher.hasHardwareAES(cpuinfo: "Features\t: fp asimd evtstrm crc32 cpuid\n"))  // a Raspberry Pi 4
        #expect(!FileCipher.hasHardwareAES(cpuinfo: ""))
        #expect(!FileCipher.hasHardwareAES(cpuinfo: "flags: aesni\n"))
    }
}
