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

    /// What `/send` takes a path to name: a path that exists or has no pattern in it as it is; a
    /// pattern's matches sorted, hidden ones only when the pattern says so, as a shell gives them.
    @Test func aSendPathIsAPatternOnlyWhenNothingHasItsName() throws {
        try FileManager.default.createDirectory(atPath: scratch + "/sub", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for name in ["b.txt", "a.txt", "c.pdf", ".hidden.txt", "sub/d.txt", "lit*.txt"] {
            #expect(FileManager.default.createFile(atPath: scratch + "/" + name, contents: Data("x".utf8)))
        }
        #expect(FileDesk.matches(of: scratch + "/a.txt") == .literal)
        #expect(FileDesk.matches(of: scratch + "/missing.txt") == .literal)
        #expect(FileDesk.matches(of: scratch + "/lit*.txt") == .literal)
        #expect(FileDesk.matches(of: scratch + "/*.txt") == .matches(["a.txt", "b.txt", "lit*.txt"].map { scratch + "/" + $0 }))
        #expect(FileDesk.matches(of: scratch + "/.*.txt") == .matches([scratch + "/.hidden.txt"]))
        #expect(FileDesk.matches(of: scratch + "/.*") == .matches([scratch + "/.hidden.txt"]))  // not . nor ..
        #expect(FileDesk.matches(of: scratch + "/[ab].txt") == .matches([scratch + "/a.txt", scratch + "/b.txt"]))
        #expect(FileDesk.matches(of: scratch + "/*/?.txt") == .matches([scratch + "/sub/d.txt"]))
        #expect(FileDesk.matches(of: scratch + "/*.doc") == .none)
        #expect(FileDesk.matches(of: scratch + "/nowhere/*") == .none)
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
