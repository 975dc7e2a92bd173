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
        // And ours unpacks the same: in the kernel (`copy_file_range`) on one file system, and
        // from tmpfs to another, where the kernel refuses (EXDEV), through a buffer.
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
