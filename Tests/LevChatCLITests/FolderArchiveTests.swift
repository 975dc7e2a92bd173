#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LevChatCore
import LevChatTestSupport
import Testing
@testable import LevChatPeer

/// `FolderArchive` against Debian's own `tar`: what it packs, `tar` lists and unpacks the same; what
/// it unpacks comes out the same tree; an archive `tar` made with an entry leading out of the
/// folder, or a link, is refused.
@Suite struct FolderArchiveTests {
    /// Debian's tar, in `directory` (`-C`), started like every child of the tests (`Spawn`).
    static func tar(_ arguments: [String], in directory: String) async throws -> (Int32, String) {
        let tar = try PeerProcess("tar", ["-C", directory] + arguments, prefix: ["/usr/bin/tar"], runsBinary: false)
        defer { tar.stop() }
        let status = try await tar.waitForExit()
        return (status, tar.errorText + tar.outputLines.joined(separator: "\n"))
    }

    /// Every regular file and folder under `root`, with the files' contents.
    static func tree(_ root: String) -> [String: Data?] {
        var out: [String: Data?] = [:]
        for relative in FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? [] {
            var isFolder: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isFolder)
            out[relative] = isFolder.boolValue ? nil : FileManager.default.contents(atPath: root + "/" + relative)
        }
        return out
    }

    /// Hidden entries (a name starting with a dot, at any depth) and the user's levchat state
    /// folder are not listed, so they are in no archive; the count of each is kept for the
    /// sentence the sender sees, and a second listing gives the same archive.
    @Test func hiddenEntriesAndTheStateFolderAreLeftOut() throws {
        let work = try FileTransferTests.folder("hidden")
        defer { FileTransferTests.remove(work) }
        for folder in ["/.ssh", "/docs/.git/objects", "/docs/keep", "/state/levchat"] {
            try FileManager.default.createDirectory(atPath: work + folder, withIntermediateDirectories: true)
        }
        for file in ["/.ssh/id_ed25519", "/.profile", "/docs/.git/config", "/docs/keep/a.txt", "/docs/.env", "/docs/b.txt", "/state/levchat/identity"] {
            try "x\n".write(toFile: work + file, atomically: true, encoding: .utf8)
        }
        let state = try #require(FolderIdentity(path: work + "/state/levchat"))
        let source = try FolderSource(work, privateFolder: state)
        #expect(source.entries.map(\.relative) == ["docs", "docs/b.txt", "docs/keep", "docs/keep/a.txt", "state"])
        #expect(source.hidden == 4 && source.leftOutPrivate && source.skipped == 0)
        #expect(FileDesk.leftOut(source, name: "home") == "left out of home/: 4 hidden entries (a name starting with a dot, as settings and keys have); "
                + "your levchat identity's folder")
        #expect(try FolderSource(work, privateFolder: state).sha256() == (try source.sha256()))
        // Without a state folder to keep out, that folder goes like any other.
        let plain = try FolderSource(work, privateFolder: nil)
        #expect(plain.entries.map(\.relative).contains("state/levchat/identity") && !plain.leftOutPrivate)
        #expect(FileDesk.leftOut(try FolderSource(work + "/docs/keep", privateFolder: state), name: "keep") == nil)
    }

    @Test func aFolderRoundTripsAndTarAgrees() async throws {
        let work = try FileTransferTests.folder("archive")
        defer { FileTransferTests.remove(work) }
        let source = work + "/project"
        let deep = source + "/src/" + String(repeating: "long-folder-name-", count: 5) + "/x"
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: source + "/empty", withIntermediateDirectories: true)
        try "readme\n".write(toFile: source + "/README", atomically: true, encoding: .utf8)
        try Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 * 31) }).write(to: URL(fileURLWithPath: deep + "/data.bin"))
        try Data().write(to: URL(fileURLWithPath: source + "/src/empty.txt"))
        try FileManager.default.createSymbolicLink(atPath: source + "/link", withDestinationPath: "/etc/passwd")
        let archive = work + "/project.tar"
        let out = open(archive, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        #expect(out >= 0)
        #expect(try FolderArchive.pack(source, into: out) == 1)  // the link, left out
        close(out)
        // Debian's tar reads it as it is.
        try FileManager.default.createDirectory(atPath: work + "/by-tar", withIntermediateDirectories: true)
        let (status, output) = try await Self.tar(["-xf", archive], in: work + "/by-tar")
        #expect(status == 0, "\(output)")
        var expected = Self.tree(source)
        expected.removeValue(forKey: "link")
        #expect(Self.tree(work + "/by-tar") == expected)
        // And ours unpacks the same, from this file system and from another (tmpfs).
        try FolderArchive.unpack(archive, into: work + "/ours")
        #expect(Self.tree(work + "/ours") == expected)
        if FileManager.default.fileExists(atPath: "/dev/shm") {
            let elsewhere = "/dev/shm/levchat-archive-\(UUID().uuidString).tar"
            try FileManager.default.copyItem(atPath: archive, toPath: elsewhere)
            defer { try? FileManager.default.removeItem(atPath: elsewhere) }
            try FolderArchive.unpack(elsewhere, into: work + "/from-tmpfs")
            #expect(Self.tree(work + "/from-tmpfs") == expected)
        }
    }

    /// The archive is made as it is read: from any offset, in reads of any length, it is the same
    /// bytes as read from the start in one go (what the offer's hash covered), and as long as
    /// `size` says.
    @Test func readingFromAnyOffsetGivesTheSameBytes() throws {
        let work = try FileTransferTests.folder("archive")
        defer { FileTransferTests.remove(work) }
        let source = work + "/tree"
        var random = SplitMix(seed: 11)
        for folder in ["", "/a", "/a/b", "/c", "/c/empty"] { try FileManager.default.createDirectory(atPath: source + folder, withIntermediateDirectories: true) }
        // Sizes on, around and far from block boundaries.
        for (index, size) in [0, 1, 511, 512, 513, 1024, 70_000, 1 << 20].enumerated() {
            let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            try Data(bytes).write(to: URL(fileURLWithPath: source + ["/", "/a/", "/a/b/", "/c/"][index % 4] + "f\(index)"))
        }
        let folder = try FolderSource(source)
        var whole = [UInt8](repeating: 0, count: folder.size + 4096)
        #expect(try FolderSource.Reader(folder).read(into: &whole, at: 0) == folder.size)
        whole.removeLast(4096)
        #expect(whole.suffix(1024).allSatisfy { $0 == 0 } && folder.size % Ustar.block == 0)
        for _ in 0..<300 {
            let offset = Int(random.next() % UInt64(folder.size + 1))
            let reader = FolderSource.Reader(folder)
            var position = offset
            var read: [UInt8] = []
            while position < folder.size {
                var chunk = [UInt8](repeating: 0xEE, count: 1 + Int(random.next() % 200_000))
                let count = try reader.read(into: &chunk, at: position)
                #expect(count > 0)
                read += chunk[..<count]
                position += count
            }
            #expect(read == Array(whole[offset...]), "from \(offset)")
        }
    }

    /// A folder's archive unpacked as it arrives (`FolderReceiver`), cut off anywhere and opened
    /// again any number of times (a receiver killed, a link lost), sometimes with the end of its
    /// last file lost too (a crash before the disk had it): each time it resumes at or before
    /// where it was cut, holding exactly the archive's hash up to there, and the folder that
    /// comes out at the end is the one that went in.
    @Test func aFolderUnpackedAsItArrivesResumesFromAnyCut() throws {
        let work = try FileTransferTests.folder("archive")
        defer { FileTransferTests.remove(work) }
        var random = SplitMix(seed: 17)
        let source = work + "/tree"
        for folder in ["", "/a", "/a/b", "/c", "/c/empty", "/d"] { try FileManager.default.createDirectory(atPath: source + folder, withIntermediateDirectories: true) }
        for (index, size) in [0, 1, 511, 512, 513, 1024, 5_000, 70_000, 300_000, 2].enumerated() {
            let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            try Data(bytes).write(to: URL(fileURLWithPath: source + ["/", "/a/", "/a/b/", "/c/", "/d/"][index % 5] + "f\(index)"))
        }
        let folder = try FolderSource(source)
        var archive = [UInt8](repeating: 0, count: folder.size)
        #expect(try FolderSource.Reader(folder).read(into: &archive, at: 0) == folder.size)
        for round in 0..<40 {
            let part = work + "/got\(round).part"
            var hasher = FileHasher()
            var receiver = try FolderReceiver.open(part, hashingInto: &hasher)
            var cuts = 0
            while receiver.position < folder.size {
                // Up to a random cut, in random pieces.
                let cut = min(folder.size, receiver.position + 1 + Int(random.next() % UInt64(folder.size / 3)))
                while receiver.position < cut {
                    let piece = min(cut - receiver.position, 1 + Int(random.next() % 9_000))
                    let from = receiver.position
                    try archive.withUnsafeBytes { bytes in try receiver.write(UnsafeRawBufferPointer(rebasing: bytes[from..<(from + piece)])) }
                    #expect(receiver.position == from + piece)
                }
                guard cut < folder.size else { break }
                cuts += 1
                // Killed (its descriptors closed), and opened again by the next run. Sometimes a
                // file's end is lost too, as a crash before the disk had it can lose it.
                receiver = try FolderReceiver.open(work + "/scratch\(round)", hashingInto: &hasher)
                if random.next() % 3 == 0, let newest = try Self.newestFile(in: part) {
                    let size = (try FileManager.default.attributesOfItem(atPath: newest)[.size] as? Int) ?? 0
                    #expect(truncate(newest, off_t(Int(random.next() % UInt64(size + 1)))) == 0)
                }
                hasher = FileHasher()
                receiver = try FolderReceiver.open(part, hashingInto: &hasher)
                #expect(receiver.position <= cut)
                var expected = FileHasher()
                archive.withUnsafeBytes { expected.update(UnsafeRawBufferPointer(rebasing: $0[..<receiver.position])) }
                #expect(hasher.hex() == expected.hex(), "round \(round), cut at \(cut), resumed at \(receiver.position)")
            }
            try receiver.finish()
            try receiver.deliver(to: work + "/got\(round)")
            #expect(Self.tree(work + "/got\(round)") == Self.tree(source), "round \(round) after \(cuts) cuts")
            #expect(!FileManager.default.fileExists(atPath: part))
        }
    }

    /// Whatever bytes a sender sends as a folder (a real archive with bytes changed, cut, or
    /// headers with hostile names), `FolderReceiver` either takes them or refuses them, never
    /// crashes, and never makes anything outside its part folder, however it is cut and resumed.
    @Test func damagedArchivesNeverLeaveThePartFolder() throws {
        let work = try FileTransferTests.folder("archive")
        defer { FileTransferTests.remove(work) }
        var random = SplitMix(seed: 23)
        let source = work + "/tree"
        try FileManager.default.createDirectory(atPath: source + "/a/b", withIntermediateDirectories: true)
        for (index, size) in [0, 700, 1_500, 4_000].enumerated() {
            try Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) }).write(to: URL(fileURLWithPath: source + (index % 2 == 0 ? "/a/" : "/a/b/") + "f\(index)"))
        }
        let folder = try FolderSource(source)
        var archive = [UInt8](repeating: 0, count: folder.size)
        #expect(try FolderSource.Reader(folder).read(into: &archive, at: 0) == folder.size)
        let hostileNames = ["../../escaped", "/etc/passwd", "a/../../x", "..", "./../y", "a/b/../../../z", "\u{1B}[31m", ".hidden", "con/../.."]
        let outside = Set(try FileManager.default.contentsOfDirectory(atPath: work))
        var escapesRefused = 0
        for round in 0..<600 {
            var damaged = archive
            switch random.next() % 4 {
            case 0:
                for _ in 0..<(1 + random.next() % 8) { damaged[Int(random.next() % UInt64(damaged.count))] = UInt8(truncatingIfNeeded: random.next()) }
            case 1:
                damaged.removeSubrange(Int(random.next() % UInt64(damaged.count))...)
            case 2:
                // A valid header (right checksum) with a hostile name, in place of the first.
                let name = hostileNames[Int(random.next() % UInt64(hostileNames.count))]
                var header = [UInt8](repeating: 0, count: Ustar.block)
                for (i, byte) in name.utf8.prefix(100).enumerated() { header[i] = byte }
                for (i, byte) in "0000644\u{0}0000000\u{0}0000000\u{0}00000000000\u{0}00000000000\u{0}".utf8.enumerated() { header[100 + i] = byte }
                header[156] = UInt8(ascii: random.next() % 2 == 0 ? "0" : "5")
                for (i, byte) in "ustar\u{0}00".utf8.enumerated() { header[257 + i] = byte }
                for i in 148..<156 { header[i] = UInt8(ascii: " ") }
                let sum = String(header.reduce(0) { $0 + Int($1) }, radix: 8)
                for (i, byte) in (String(repeating: "0", count: 6 - sum.count) + sum).utf8.enumerated() { header[148 + i] = byte }
                header[154] = 0
                damaged.replaceSubrange(0..<Ustar.block, with: header)
            default:
                damaged = (0..<(1 + Int(random.next() % 3_000))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            }
            let part = work + "/got\(round).part"
            var hasher = FileHasher()
            var receiver = try FolderReceiver.open(part, hashingInto: &hasher)
            var refused = false
            while receiver.position < damaged.count && !refused {
                let from = receiver.position
                let piece = min(damaged.count - from, 1 + Int(random.next() % 2_000))
                do {
                    try damaged.withUnsafeBytes { try receiver.write(UnsafeRawBufferPointer(rebasing: $0[from..<(from + piece)])) }
                } catch {
                    if case .archive(.escapingPath) = error as? FolderArchive.Failure { escapesRefused += 1 }
                    refused = true
                }
                if !refused, random.next() % 4 == 0 {
                    hasher = FileHasher()
                    do { receiver = try FolderReceiver.open(part, hashingInto: &hasher) } catch { refused = true }
                }
            }
            if !refused { _ = try? receiver.finish() }
            #expect(Set(try FileManager.default.contentsOfDirectory(atPath: work)).subtracting(outside) == ["got\(round).part"], "round \(round)")
            FolderReceiver.remove(part)
        }
        #expect(!FileManager.default.fileExists(atPath: work + "/../escaped") && !FileManager.default.fileExists(atPath: work + "/../z"))
        #expect(escapesRefused > 20, "the hostile headers were refused for their names, not only for their form")
    }

    /// The most recently changed regular file under `root`, not counting the journal.
    static func newestFile(in root: String) throws -> String? {
        var newest: (String, Date)?
        for relative in FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? [] where relative != FolderReceiver.journalName {
            let attributes = try FileManager.default.attributesOfItem(atPath: root + "/" + relative)
            guard attributes[.type] as? FileAttributeType == .typeRegular, let date = attributes[.modificationDate] as? Date else { continue }
            if newest.map({ date >= $0.1 }) ?? true { newest = (root + "/" + relative, date) }
        }
        return newest?.0
    }

    /// A file changed after the folder was listed is found as the archive is read, with a
    /// sentence: shorter, gone, or a link in its place (never followed).
    @Test func aFileChangedSinceTheListingIsSaid() throws {
        let work = try FileTransferTests.folder("archive")
        defer { FileTransferTests.remove(work) }
        let source = work + "/tree"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        for name in ["a", "b", "c"] { try Data(repeating: 1, count: 5_000).write(to: URL(fileURLWithPath: source + "/" + name)) }
        let folder = try FolderSource(source)
        #expect(folder.files == 3)
        #expect(truncate(source + "/a", 100) == 0)
        try FileManager.default.removeItem(atPath: source + "/b")
        try FileManager.default.removeItem(atPath: source + "/c")
        try FileManager.default.createSymbolicLink(atPath: source + "/c", withDestinationPath: "/etc/passwd")
        var buffer = [UInt8](repeating: 0, count: 1024)
        for (entry, said) in zip(folder.entries, ["\(source)/a is shorter than it was", "\(source)/b is gone",
                                                  "\(source)/c is a link now"]) {
            let at = entry.offset + Ustar.block + (entry.relative == "a" ? 100 : 0)
            #expect(throws: FolderArchive.Failure.changed(said)) { try FolderSource.Reader(folder).read(into: &buffer, at: at) }
        }
    }

    @Test func anArchiveLeadingOutOrHoldingALinkIsRefused() async throws {
        let work = try FileTransferTests.folder("archive")
        defer { FileTransferTests.remove(work) }
        try FileManager.default.createDirectory(atPath: work + "/in/sub", withIntermediateDirectories: true)
        try "x\n".write(toFile: work + "/in/sub/file", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: work + "/in/link", withDestinationPath: "/etc")
        // `tar --transform` writes names that climb out; `--format=ustar` keeps it readable to us.
        let (climbStatus, climbOutput) = try await Self.tar(["--format=ustar", "-cf", work + "/climb.tar", "--transform=s,^in/sub,../../escaped,", "in/sub/file"], in: work)
        #expect(climbStatus == 0, "\(climbOutput)")
        #expect(throws: FolderArchive.Failure.self) { try FolderArchive.unpack(work + "/climb.tar", into: work + "/out1") }
        #expect(!FileManager.default.fileExists(atPath: work + "/../escaped"))
        let (linkStatus, linkOutput) = try await Self.tar(["--format=ustar", "-cf", work + "/link.tar", "in/link"], in: work)
        #expect(linkStatus == 0, "\(linkOutput)")
        #expect(throws: FolderArchive.Failure.self) { try FolderArchive.unpack(work + "/link.tar", into: work + "/out2") }
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: work + "/out2/in/link")) == nil)
    }
}

/// A folder's archive written to a file and unpacked from one, through the product's own
/// `FolderSource` and `FolderReceiver`, so that Debian's `tar` can read what levchat sends and
/// levchat can be fed what `tar` writes.
extension FolderArchive {
    /// Writes `folder`'s archive into `out` (open for writing), as `FolderSource` reads it; returns
    /// how many entries it left out.
    static func pack(_ folder: String, into out: Int32) throws(Failure) -> Int {
        let source = try FolderSource(folder)
        try source.readWhole { bytes throws(Failure) in
            if let code = FileDesk.write(out, bytes) { throw .io("cannot write the archive", code) }
        }
        return source.skipped
    }

    /// Creates `root` (which must not exist) and everything the archive file holds under it, as
    /// a fetch unpacks a folder (`FolderReceiver`, fed the file's bytes). On any failure the
    /// caller removes `root`.
    static func unpack(_ archive: String, into root: String) throws(Failure) {
        let input = open(archive, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .io("cannot read \(archive)", errno) }
        defer { close(input) }
        guard mkdir(root, 0o777) == 0 else { throw .io("cannot make \(root)", errno) }
        var hasher = FileHasher()
        let receiver = try FolderReceiver.open(root, hashingInto: &hasher)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw .io("cannot read \(archive)", errno) }
            if count == 0 { break }
            try buffer.withUnsafeBytes { bytes in
                Result { () throws(Failure) in try receiver.write(UnsafeRawBufferPointer(rebasing: bytes[..<count])) }
            }.get()
        }
        try receiver.finish()
        unlink(root + "/" + FolderReceiver.journalName)
    }
}
