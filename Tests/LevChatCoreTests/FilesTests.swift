import Foundation
import LevChatTestSupport
import Testing
@testable import LevChatCore

/// Files (Docs/PROTOCOL.md, "Files"): the offer's text, names from the network made safe, the
/// board that numbers offers, the quoting of `/send` paths and the wire messages of a fetch.
@Suite struct FilesTests {
    static let token = String(repeating: "ab", count: 16)
    static let hash = String(repeating: "0f", count: 32)

    /// `/send PATH NAME` names a member under the room's name rule, never the sender itself.
    @Test func aRecipientIsAMemberByItsNameAndNeverOneself() {
        let members = [testMember(node: node(1), name: "alice", ordinal: 1, endpoints: []),
                       testMember(node: node(2), name: "Bob", ordinal: 2, endpoints: [])]
        #expect(FileRecipient(named: "bob", among: members, me: node(1)) == .member(node(2)))
        #expect(FileRecipient(named: "BOB", among: members, me: node(1)) == .member(node(2)))
        #expect(FileRecipient(named: "alice", among: members, me: node(1)) == .yourself("alice"))
        #expect(FileRecipient(named: "carol", among: members, me: node(1)) == .nobodyCalled("carol"))
        #expect(FileRecipient(named: "bob", among: [], me: node(1)) == .nobodyCalled("bob"))
    }

    @Test func anOfferRoundTripsThroughItsText() throws {
        let offer = FileOffer(file: Self.token, name: "my report/ü.pdf", size: 2_400_000, sha256: Self.hash)
        #expect(FileOffer(text: offer.text) == offer)
        // The documented form: JSON with sorted keys.
        #expect(offer.text == #"{"file":"\#(Self.token)","name":"my report/ü.pdf","sha256":"\#(Self.hash)","size":2400000}"#)
    }

    @Test(arguments: [
        #"not json"#,
        #"{"file":"abc","name":"a","sha256":"\#(hash)","size":1}"#,
        #"{"file":"\#(token)","name":"","sha256":"\#(hash)","size":1}"#,
        #"{"file":"\#(token)","name":"a","sha256":"\#(hash.uppercased())","size":1}"#,
        #"{"file":"\#(token)","name":"a","sha256":"\#(hash)","size":-1}"#,
        #"{"file":"\#(token)","name":"a","sha256":"\#(hash)","size":9223372036854775807}"#,
        #"{"file":"\#(token)","name":"\#(String(repeating: "x", count: 256))","sha256":"\#(hash)","size":1}"#,
        #"{"file":"\#(token)","name":"a","sha256":"\#(hash)"}"#,
    ])
    func aMalformedOfferIsNoOffer(text: String) {
        #expect(FileOffer(text: text) == nil)
    }

    /// For any string at all, the safe name is one component, never hidden, free of anything a
    /// terminal or a file system would act on, bounded, and not empty.
    @Test func safeNamesHoldForAnyName() {
        var random = SplitMix(seed: 17)
        var names = ["..", ".", "/", "../../etc/passwd", "/etc/passwd", "a/b", "\\..\\x", ".bashrc", "...", " . ", "\u{0}",
                     "\u{1B}[31mred", "\u{202E}fdp.exe", String(repeating: "é", count: 300), "", "   ",
                     // Found by FuzzArchive: the cut at 200 bytes laid tabs bare at the end.
                     String(repeating: "\u{FFFD}", count: 65) + "\t\t\t\t\t" + String(repeating: "\u{FFFD}", count: 20),
                     String(repeating: "a", count: 199) + " bc", ". .x", " . . bashrc", ".\u{301}x", "a\tb", "\t.x", "x\u{200B} "]
        for _ in 0..<5_000 { names.append(ScreenTextTests.hostileString(&random) + ["", "/", "..", "."].randomElement(using: &random)!) }
        for name in names {
            let safe = SafeFileName.make(name)
            #expect(!safe.isEmpty)
            #expect(!safe.contains("/") && !safe.contains("\\") && !safe.contains("\u{0}"), "\(name.debugDescription)")
            #expect(!safe.hasPrefix("."), "\(name.debugDescription) → \(safe.debugDescription)")
            #expect(safe.utf8.count <= 200)
            #expect(!safe.unicodeScalars.contains { DisplayText.isUnsafe($0) }, "\(name.debugDescription)")
            #expect(safe != "." && safe != "..")
            // Nothing a file name should not hold (a tab included, which a terminal may show),
            // no whitespace at either end, and safe names are left as they are.
            #expect(!safe.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.properties.generalCategory == .format },
                    "\(name.debugDescription) → \(safe.debugDescription)")
            #expect(safe.unicodeScalars.first != "." && safe.unicodeScalars.first?.properties.isWhitespace == false
                    && safe.unicodeScalars.last?.properties.isWhitespace == false, "\(name.debugDescription) → \(safe.debugDescription)")
            #expect(SafeFileName.make(safe) == safe, "\(name.debugDescription) → \(safe.debugDescription)")
        }
        #expect(SafeFileName.make("a\tb") == "a b")
        #expect(SafeFileName.make(". .x") == "x")
        #expect(SafeFileName.make("report.pdf") == "report.pdf")
        #expect(SafeFileName.make("../../etc/passwd") == "_.._etc_passwd")
        #expect(SafeFileName.make(".bashrc") == "bashrc")
    }

    @Test func anExistingNameGetsTheFirstFreeNumber() {
        let taken: Set = ["report.pdf", "report (1).pdf", "notes", "archive.tar.gz"]
        #expect(SafeFileName.unused("report.pdf", taken: taken.contains) == "report (2).pdf")
        #expect(SafeFileName.unused("notes", taken: taken.contains) == "notes (1)")
        #expect(SafeFileName.unused("archive.tar.gz", taken: taken.contains) == "archive.tar (1).gz")
        #expect(SafeFileName.unused("new.txt", taken: taken.contains) == "new.txt")
    }

    static func record(_ seq: Int, node: NodeID, name: String = "bob", text: String) -> ChatRecord {
        ChatRecord(seq: seq, id: MessageID(node: node, seq: seq), from: name, text: text, time: 0, kind: .offer, key: "", sig: "")
    }

    @Test func theBoardNumbersOffersOnceAndEndsThemWithTheirSender() throws {
        let bob = NodeID.random(), carol = NodeID.random()
        var board = FileBoard()
        let first = FileOffer(file: Self.token, name: "a.txt", size: 1, sha256: Self.hash)
        let second = FileOffer(file: String(repeating: "cd", count: 16), name: "b.txt", size: 2, sha256: Self.hash)
        let seen = board.saw(Self.record(1, node: bob, text: first.text))
        let (one, new) = try #require(seen)
        #expect(one.id == 1 && new && one.open)
        // Seen again (a host change, history): the same number, not new.
        let seenAgain = board.saw(Self.record(1, node: bob, text: first.text))
        let again = try #require(seenAgain)
        #expect(again.0.id == 1 && !again.new)
        let garbage = board.saw(Self.record(2, node: carol, text: "garbage"))
        #expect(garbage == nil)
        let seenSecond = board.saw(Self.record(3, node: carol, name: "carol", text: second.text))
        let two = try #require(seenSecond)
        #expect(two.0.id == 2)
        #expect(board.open.map(\.id) == [1, 2])
        #expect(board.senderLeft(bob).map(\.id) == [1])
        #expect(board.senderLeft(bob).isEmpty)
        #expect(board.open.map(\.id) == [2])
        // Who is present decides for offers first seen in history.
        #expect(board.keepOnly(senders: [bob]).map(\.id) == [2])
        // bob is in the room as this peer enters it (he left and came back while it was away):
        // his offer is open again.
        #expect(board.open.map(\.id) == [1])
        let seenLate = board.saw(Self.record(4, node: carol, name: "carol", text: first.text))
        let late = try #require(seenLate)
        #expect(!late.0.open)
        #expect(board.entry(file: Self.token, from: bob)?.id == 1)
        // A sender that comes back has its offers open again, and the ones that had ended are
        // said (those already open are not).
        #expect(board.senderReturned(bob).isEmpty)
        #expect(board.open.map(\.id).contains(1))
        #expect(board.senderLeft(bob).map(\.id) == [1])
        #expect(board.isClosedOffer(MessageID(node: bob, seq: 1), shownTo: carol))
        #expect(board.senderReturned(bob).map(\.id) == [1])
        #expect(!board.isClosedOffer(MessageID(node: bob, seq: 1), shownTo: carol))
        #expect(board.senderReturned(carol).map(\.id) == [2, 3])
        #expect(board.senderReturned(carol).isEmpty)
    }

    /// An offer to one member names its node; the board numbers it like any offer (numbers agree
    /// across the room) but shows it only to its sender and that member.
    @Test func anOfferToOneMemberIsShownToItAndItsSenderOnly() throws {
        let bob = NodeID.random(), carol = NodeID.random(), dave = NodeID.random()
        let offer = FileOffer(file: Self.token, name: "a.txt", size: 1, sha256: Self.hash, to: carol)
        let read = try #require(FileOffer(text: offer.text))
        #expect(read.recipient == carol && read == offer)
        #expect(FileOffer(file: Self.token, name: "a.txt", size: 1, sha256: Self.hash).recipient == nil)
        var bad = offer
        bad.to = "carol"
        #expect(FileOffer(text: bad.text) == nil)
        var board = FileBoard()
        _ = board.saw(Self.record(1, node: bob, text: FileOffer(file: String(repeating: "cd", count: 16), name: "r.txt", size: 1, sha256: Self.hash).text))
        let seen = board.saw(Self.record(2, node: bob, text: offer.text))
        let (entry, _) = try #require(seen)
        #expect(entry.id == 2)
        #expect(entry.isShown(to: bob) && entry.isShown(to: carol))
        #expect(!entry.isShown(to: dave) && !entry.isShown(to: nil))
        let roomWide = try #require(board.entry(1))
        #expect(roomWide.isShown(to: dave))
    }

    /// A fetch's proof speaks for one key, one room, one file and one link: change any of them,
    /// or any byte of the proof, and it proves nobody.
    @Test func aFetchProofHoldsForItsLinkFileRoomAndKeyOnly() throws {
        var random = SplitMix(seed: 41)
        let carol = PeerIdentity(), dave = PeerIdentity()
        for _ in 0..<200 {
            let room = RoomID.random()
            let binding = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
            let file = (0..<16).map { _ in UInt8.random(in: 0...255, using: &random) }.hexString
            let fetch = carol.fetch(file, offset: 0, room: room, binding: binding)
            #expect(FetchProof.prover(of: fetch, room: room, binding: binding) == carol.node)
            var otherBinding = binding
            otherBinding[Int.random(in: 0..<32, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            #expect(FetchProof.prover(of: fetch, room: room, binding: otherBinding) == nil)
            #expect(FetchProof.prover(of: fetch, room: RoomID.random(), binding: binding) == nil)
            var otherFile = fetch
            otherFile.file = (0..<16).map { _ in UInt8.random(in: 0...255, using: &random) }.hexString
            #expect(FetchProof.prover(of: otherFile, room: room, binding: binding) == nil)
            // Someone else's key with carol's signature, or a damaged signature: nobody.
            var claimed = fetch
            claimed.key = Base64.encode(dave.publicKey)
            #expect(FetchProof.prover(of: claimed, room: room, binding: binding) == nil)
            let sig = try #require(fetch.sig)
            var damaged = try #require(Base64.decode(sig))
            damaged[Int.random(in: 0..<64, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            var tampered = fetch
            tampered.sig = Base64.encode(damaged)
            #expect(FetchProof.prover(of: tampered, room: room, binding: binding) == nil)
        }
        #expect(FetchProof.prover(of: Fetch(file: Self.token, offset: 0), room: RoomID.random(), binding: []) == nil)
        var half = carol.fetch(Self.token, offset: 0, room: RoomID.random(), binding: [])
        half.sig = nil
        #expect(throws: MessageError.self) { try WireMessage.decode(WireMessage.fetch(half).encoded()) }
        let signed = WireMessage.fetch(carol.fetch(Self.token, offset: 7, room: RoomID.random(), binding: [1, 2]))
        #expect(try WireMessage.decode(signed.encoded()) == signed)
    }

    /// The offers kept across runs (`OfferedFiles`): any path and offer survive the text, found by
    /// their token in their own room only; folders too; the newest `kept` stay; and for
    /// any text at all, what is read survives its own text unchanged.
    @Test func offersKeptAcrossRunsSurviveTheirTextAndAnyDamage() throws {
        let roomA = try #require(RoomID(hex: "0011223344556677")), roomB = try #require(RoomID(hex: "8899aabbccddeeff"))
        var random = SplitMix(seed: 29)
        var kept = OfferedFiles()
        var tokens: [String] = []
        for index in 0..<(OfferedFiles.kept + 20) {
            let token = FileOffer.randomToken()
            tokens.append(token)
            let path = "/home/u/" + ScreenTextTests.hostileString(&random).replacingOccurrences(of: "\u{0}", with: "") + " \(index)\n.txt"
            let offer = FileOffer(file: token, name: "n \(index)", size: index, sha256: Self.hash, to: index % 3 == 0 ? node(2) : nil)
            kept.remember(OfferedFiles.Entry(day: "2026-12-06", room: index % 2 == 0 ? roomA : roomB, path: path, offer: offer))
        }
        let folder = FileOffer(file: FileOffer.randomToken(), name: "f", size: 1024, sha256: Self.hash, folder: true)
        kept.remember(OfferedFiles.Entry(day: "2026-12-06", room: roomA, path: "/a", offer: folder))
        #expect(kept.entries.count == OfferedFiles.kept)
        #expect(kept.entry(file: folder.file, room: roomA)?.offer.isFolder == true)
        let read = OfferedFiles(parsing: kept.text)
        #expect(read == kept)
        // The oldest are gone; the newest are found in their room and in no other.
        #expect(read.entry(file: tokens[0], room: roomA) == nil)
        let last = try #require(read.entry(file: tokens.last!, room: roomB))
        #expect(last.offer.name == "n \(OfferedFiles.kept + 19)" && last.path.hasSuffix(" \(OfferedFiles.kept + 19)\n.txt"))
        #expect(read.entry(file: tokens.last!, room: roomA) == nil)
        // Damage: any line cut, any byte changed, or random text: what reads survives its text.
        let text = Array(kept.text.utf8)
        for _ in 0..<2_000 {
            var damaged = text
            switch random.next() % 3 {
            case 0: damaged[Int(random.next() % UInt64(damaged.count))] = UInt8(truncatingIfNeeded: random.next())
            case 1: damaged.removeSubrange(Int(random.next() % UInt64(damaged.count))...)
            default: damaged = Array(ScreenTextTests.hostileString(&random).utf8)
            }
            let parsed = OfferedFiles(parsing: String(decoding: damaged, as: UTF8.self))
            #expect(parsed.entries.count <= OfferedFiles.kept)
            #expect(OfferedFiles(parsing: parsed.text) == parsed)
        }
        #expect(OfferedFiles(parsing: "2026-12-06 0011223344556677 L2E= {}\nnot a line\n\n").entries.isEmpty)
    }

    @Test func pathsSplitAsAShellWould() {
        #expect(ShellWords.split("report.pdf") == ["report.pdf"])
        #expect(ShellWords.split(#""my report.pdf""#) == ["my report.pdf"])
        #expect(ShellWords.split("'my report.pdf' /tmp") == ["my report.pdf", "/tmp"])
        #expect(ShellWords.split(#"my\ report.pdf"#) == ["my report.pdf"])
        #expect(ShellWords.split(#""it's here""#) == ["it's here"])
        #expect(ShellWords.split(#"'back\slash'"#) == [#"back\slash"#])
        #expect(ShellWords.split("a  b") == ["a", "b"])
        #expect(ShellWords.split("\"\"") == [""])
        #expect(ShellWords.split("\"open") == nil)
        #expect(ShellWords.split("trailing\\") == nil)
    }

    @Test func theFileCommandsParse() {
        #expect(InputLine(parsing: #"/send "my report.pdf""#) == .send(path: "my report.pdf", to: nil))
        #expect(InputLine(parsing: #"/send "my report.pdf" carol"#) == .send(path: "my report.pdf", to: "carol"))
        #expect(InputLine(parsing: "/send /tmp/a b") == .send(path: "/tmp/a", to: "b"))
        #expect(InputLine(parsing: "/send /tmp/a b c") == .usage(ChatCommand.table.first { $0.names == ["send"] }!.usage))
        #expect(InputLine(parsing: "/send \"\"") == .usage(ChatCommand.table.first { $0.names == ["send"] }!.usage))
        #expect(InputLine(parsing: "/get 3") == .get(3, into: nil))
        #expect(InputLine(parsing: "/get 3 '/tmp/my files'") == .get(3, into: "/tmp/my files"))
        #expect(InputLine(parsing: "/get x") == .usage("/get ID [DIR], for example: /get 3"))
        #expect(InputLine(parsing: "/get 0") == .usage("/get ID [DIR], for example: /get 3"))
        #expect(InputLine(parsing: "/files") == .files)
        #expect(InputLine(parsing: "/cancel 2") == .cancel(2))
        // Alone: the /sends still being read for their offers.
        #expect(InputLine(parsing: "/cancel") == .cancel(nil))
        #expect(InputLine(parsing: "/cancel  ") == .cancel(nil))
        #expect(InputLine(parsing: "/cancel").fileCommand == .cancel(nil))
        let cancelUsage = "/cancel ID, for example: /cancel 3 (/cancel alone stops a /send being read, else the only transfer)"
        #expect(InputLine(parsing: "/cancel x") == .usage(cancelUsage))
        #expect(InputLine(parsing: "/cancel 0") == .usage(cancelUsage))
        #expect(InputLine(parsing: "/get 3").fileCommand == .get(3, into: nil))
        #expect(InputLine(parsing: "hello").fileCommand == nil)
    }

    @Test func theFetchMessagesRoundTripAndAreRangeChecked() throws {
        let data: [UInt8] = (0..<1000).map { UInt8($0 % 251) }
        #expect(WireMessage.data(data).encoded() == [4] + data)
        #expect(try WireMessage.decode([4] + data) == .data(data))
        #expect(try WireMessage.decode([4]) == .data([]))
        let fetch = WireMessage.fetch(Fetch(file: Self.token, offset: 61_200_000))
        #expect(try WireMessage.decode(fetch.encoded()) == fetch)
        let start = WireMessage.file(FileStart(size: 100, offset: 40))
        #expect(try WireMessage.decode(start.encoded()) == start)
        #expect(throws: MessageError.self) { try WireMessage.decode(WireMessage.fetch(Fetch(file: "../x", offset: 0)).encoded()) }
        #expect(throws: MessageError.self) { try WireMessage.decode(WireMessage.fetch(Fetch(file: Self.token, offset: -1)).encoded()) }
        #expect(throws: MessageError.self) { try WireMessage.decode(WireMessage.file(FileStart(size: 10, offset: 11)).encoded()) }
        let done = WireMessage.done(FileDone(sha256: Self.hash))
        #expect(try WireMessage.decode(done.encoded()) == done)
        #expect(throws: MessageError.self) { try WireMessage.decode(WireMessage.done(FileDone(sha256: "not a hash")).encoded()) }
        let aes = WireMessage.file(FileStart(size: 10, offset: 0, cipher: .aes256GCM))
        #expect(try WireMessage.decode(aes.encoded()) == aes)
    }

    @Test func sizesReadAsPeopleWriteThem() {
        #expect(ByteCount.describe(512) == "512 B")
        #expect(ByteCount.describe(2_400_000) == "2.4 MB")
        #expect(ByteCount.describe(61_234_567) == "61.2 MB")
        #expect(ByteCount.describe(1_000) == "1.0 kB")
    }
}

/// Folders as ustar archives (`Ustar`): headers round-trip, and whatever path an archive holds,
/// what it unpacks to stays inside the folder.
@Suite struct UstarTests {
    @Test func headersRoundTrip() throws {
        let long = String(repeating: "d", count: 90) + "/" + String(repeating: "e", count: 60) + "/" + String(repeating: "f", count: 99)
        for (path, kind) in [("notes.txt", Ustar.Kind.file(size: 1234)), ("a/b/c", .directory), (long, .file(size: 0)),
                             ("über/ünïcode.txt", .file(size: Ustar.maximumFileSize))] {
            let header = try Ustar.header(path: path, kind: kind, mode: 0o644, mtime: 1_700_000_000)
            #expect(header.count == 512)
            let entry = try #require(try Ustar.entry(header))
            #expect(entry.path == path.split(separator: "/").map(String.init))
            #expect(entry.kind == kind)
        }
        #expect(throws: Ustar.ArchiveError.self) { try Ustar.header(path: String(repeating: "x", count: 101), kind: .directory, mode: 0, mtime: 0) }
        #expect(throws: Ustar.ArchiveError.self) { try Ustar.header(path: "big", kind: .file(size: Ustar.maximumFileSize + 1), mode: 0, mtime: 0) }
        #expect(try Ustar.entry([UInt8](repeating: 0, count: 512)) == nil)
        var tampered = try Ustar.header(path: "a", kind: .file(size: 1), mode: 0o644, mtime: 0)
        tampered[0] = UInt8(ascii: "b")
        #expect(throws: Ustar.ArchiveError.badChecksum) { try Ustar.entry(tampered) }
    }

    /// Every mode a sender may give: executable by anyone makes an executable file, nothing else
    /// passes (no set-id, sticky or write bits beyond what the umask leaves); a field that cannot
    /// be read is not executable.
    @Test func aFileIsMadeExecutableOnlyWhenItWasAndNeverSetID() throws {
        for mode in 0...0o7777 {
            let header = try Ustar.header(path: "x", kind: .file(size: 1), mode: mode, mtime: 0)
            #expect(Ustar.creationMode(header) == (mode & 0o111 != 0 ? 0o777 : 0o666), "\(String(mode, radix: 8))")
        }
        var damaged = try Ustar.header(path: "x", kind: .file(size: 1), mode: 0o755, mtime: 0)
        damaged.replaceSubrange(100..<108, with: Array("9z\0\0\0\0\0\0".utf8))
        #expect(Ustar.creationMode(damaged) == 0o666)
        #expect(Ustar.creationMode([1, 2, 3]) == 0o666)
    }

    /// For any path at all: refused, or components that are each one safe name (no `..`, no `/`,
    /// never empty, never hidden), so joined under the new folder they stay inside it.
    @Test func noPathLeavesTheFolder() throws {
        var random = SplitMix(seed: 23)
        // With combining marks, which join a `/` or a `.` before them into one Character: the
        // file system still sees the slash and the dot (found by FuzzArchive).
        let pieces = ["..", ".", "/", "//", "a", "b c", ".hidden", "\u{1B}[2J", "\u{202E}", "...", "~", "\\..", "x/../..", "",
                      "\u{301}", "\u{5C7}", ". ", " .", "\t"]
        var paths = ["../etc/passwd", "/etc/passwd", "a/../../b", "./././", "a/./b", "..", "."]
        for _ in 0..<5_000 {
            paths.append((0..<Int.random(in: 1...6, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined())
        }
        for path in paths {
            guard let parts = try? Ustar.components(of: path) else { continue }
            #expect(!parts.isEmpty)
            for part in parts {
                #expect(part != ".." && part != "." && !part.isEmpty && !part.unicodeScalars.contains("/") && part.unicodeScalars.first != ".",
                        "\(path.debugDescription) → \(parts)")
            }
            // Each part is one name on disk: joined again, they split back into themselves.
            #expect(parts.joined(separator: "/").pathParts == parts, "\(path.debugDescription) → \(parts)")
        }
        #expect(throws: Ustar.ArchiveError.self) { try Ustar.components(of: "../etc/passwd") }
        #expect(throws: Ustar.ArchiveError.self) { try Ustar.components(of: "/etc/passwd") }
        #expect(throws: Ustar.ArchiveError.self) { try Ustar.components(of: "a/../../b") }
        #expect((try? Ustar.components(of: "a/./b//c")) == ["a", "b", "c"])
        #expect(throws: Ustar.ArchiveError.self) { try Ustar.components(of: "/\u{301}etc/passwd") }
        #expect((try? Ustar.components(of: "a/\u{301}b")) == ["a", "\u{301}b"])
    }

    /// Any 512 bytes: an entry whose path is safe, the end, or an error; never a crash. Blocks
    /// are valid headers with bytes changed, so that some still pass the checksum, and noise.
    @Test func anyHeaderBlockIsReadOrRefused() throws {
        var random = SplitMix(seed: 5)
        var read = 0, refused = 0
        for round in 0..<5_000 {
            let path = ["a/../b", "dir/file.txt", "../x", "/abs", ".hidden/x"].randomElement(using: &random)!
            var block = round % 4 == 3 ? (0..<512).map { _ in UInt8.random(in: 0...255, using: &random) }
                                       : try Ustar.header(path: path, kind: .file(size: 10), mode: 0o644, mtime: 0)
            for _ in 0..<Int.random(in: 0...2, using: &random) { block[Int.random(in: 0..<100, using: &random)] = UInt8.random(in: 0...255, using: &random) }
            do {
                guard let entry = try Ustar.entry(block) else { continue }
                read += 1
                for part in entry.path { #expect(part != ".." && !part.contains("/") && !part.hasPrefix(".") && !part.isEmpty) }
            } catch {
                refused += 1
            }
        }
        #expect(read > 100 && refused > 100, "read \(read), refused \(refused)")
    }
}
