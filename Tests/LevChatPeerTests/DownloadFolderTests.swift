import Foundation
import Testing
@testable import LevChatPeer

/// Where `/get` puts a file (Docs/CLI.md, "Files"): a folder it names must be there, the default
/// one is made when missing.
@Suite struct DownloadFolderTests {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-folders-\(UUID().uuidString)").path

    /// With no `HOME` (or an empty one), downloads and the identity go under the account's own
    /// home from its passwd entry, never under a folder every user shares such as /tmp.
    @Test func withoutHomeTheAccountsOwnHomeIsUsed() throws {
        let entry = try #require(getpwuid(getuid()))
        let own = String(cString: try #require(entry.pointee.pw_dir))
        #expect(FileDesk.home([:]) == own)
        #expect(FileDesk.home(["HOME": ""]) == own)
        #expect(FileDesk.home(["HOME": "/srv/ann"]) == "/srv/ann")
        #expect(IdentityStore.directory([:]) == own + "/.local/state/levchat")
        #expect(IdentityStore.directory(["HOME": "", "XDG_STATE_HOME": "relative"]) == own + "/.local/state/levchat")
        #expect(IdentityStore.directory(["HOME": "/srv/ann"]) == "/srv/ann/.local/state/levchat")
        #expect(IdentityStore.directory(["HOME": "/srv/ann", "XDG_STATE_HOME": "/var/state"]) == "/var/state/levchat")
    }

    @Test func aFolderNamedInGetIsTakenNeverMade() throws {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        #expect(try FileDesk.folder(scratch, default: nil) == scratch)

        let missing = scratch + "/nowhere"
        #expect(throws: FileDesk.FolderError.missing(missing)) { try FileDesk.folder(missing, default: scratch) }
        #expect(!FileManager.default.fileExists(atPath: missing))
        #expect(FileDesk.FolderError.missing("~/Dowloads").message
                == "there is no folder ~/Dowloads (make it first, or leave it out for the downloads folder)")

        let file = scratch + "/notes.txt"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        #expect(throws: FileDesk.FolderError.notAFolder(file)) { try FileDesk.folder(file, default: scratch) }
    }

    @Test func theDownloadsFolderIsMadeWhenMissingButNeverOverAFile() throws {
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let downloads = scratch + "/deep/Downloads"
        #expect(try FileDesk.folder(nil, default: downloads) == downloads)
        var isFolder: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: downloads, isDirectory: &isFolder) && isFolder.boolValue)

        let file = scratch + "/file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        #expect(throws: FileDesk.FolderError.notAFolder(file)) { try FileDesk.folder(nil, default: file) }
        // A file where a parent should be: the system's own sentence, and nothing made.
        #expect(throws: FileDesk.FolderError.cannotMake(file + "/Downloads", "Not a directory")) {
            try FileDesk.folder(nil, default: file + "/Downloads")
        }
        // A relative default is made under the working folder.
        let relative = "levchat-relative-\(UUID().uuidString)/Downloads"
        defer { try? FileManager.default.removeItem(atPath: String(relative.prefix { $0 != "/" })) }
        #expect(try FileDesk.folder(nil, default: relative) == relative)
        #expect(FileDesk.isFolder(FileManager.default.currentDirectoryPath + "/" + relative) == true)
    }

    /// The name `/send` offers a file or folder under, as the shell's `basename` gives it.
    @Test(arguments: [("/home/ann/report.pdf", "report.pdf"), ("report.pdf", "report.pdf"), ("notes/", "notes"),
                      ("/a//b///", "b"), ("/", "/"), ("///", "/"), ("", ""), ("./.", "."), ("a/..", ".."),
                      ("my file.txt", "my file.txt"), ("/tmp/ünï cødé/", "ünï cødé"),
                      ("dir/\u{301}x", "\u{301}x"), ("/\u{5C7}/", "\u{5C7}")])
    func aPathsLastComponent(_ path: String, _ last: String) {
        #expect(FileDesk.lastComponent(of: path) == last)
    }
}
