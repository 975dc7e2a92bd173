import Foundation
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
        // And ours unpacks the same.
        try FolderArchive.unpack(archive, into: work + "/ours")
        #expect(Self.tree(work + "/ours") == expected)
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
