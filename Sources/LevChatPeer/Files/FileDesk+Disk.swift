#if canImport(Glibc)
import Glibc
#endif
import CLinuxExtras
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LevChatCore
import LevChatTransport
import Logging
import NIOCore
import Synchronization

/// The disk side of files: where downloads go, hashing a file off the concurrency pool, writes
/// that survive EINTR and short counts, and early writeback.
extension FileDesk {
    /// Renames `from` to `to` unless something is at `to` (a file, a folder, a link): 0, else the
    /// error (EEXIST for that). RENAME_NOREPLACE where the kernel has it, else a check first.
    static func moveWithoutReplacing(_ from: String, to: String) -> Int32 {
        if let renameNoReplace {
            return renameNoReplace(AT_FDCWD, from, AT_FDCWD, to, 1) == 0 ? 0 : errno  // RENAME_NOREPLACE
        }
        var status = stat()
        guard lstat(to, &status) != 0 else { return EEXIST }
        return rename(from, to) == 0 ? 0 : errno
    }

    /// `renameat2(2)` (glibc 2.28), found by name: the Glibc module leaves it out.
    static let renameNoReplace: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32)? = {
        guard let symbol = dlsym(nil, "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32).self)
    }()

    /// Starts the disk writing each 8 MiB of a fetch as soon as it is written (`sync_file_range`
    /// with `SYNC_FILE_RANGE_WRITE`, which does not wait), so that the `fsync` before the rename
    /// finds little left: without it, a gigabyte's `fsync` took 0.8 s after the last byte here.
    struct Writeback {
        static let step = 8 << 20
        let fd: Int32
        var started: Int

        init(fd: Int32, from offset: Int) {
            self.fd = fd
            started = offset
        }

        mutating func wrote(upTo bytes: Int) {
            guard bytes - started >= Writeback.step, let syncFileRange = Writeback.syncFileRange else { return }
            _ = syncFileRange(fd, Int64(started), Int64(bytes - started), 2)  // SYNC_FILE_RANGE_WRITE
            started = bytes
        }

        /// `sync_file_range(2)`: a GNU extension that Swift's Glibc module leaves out.
        static let syncFileRange: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32)? = {
            guard let symbol = dlsym(nil, "sync_file_range") else { return nil }
            return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32).self)
        }()
    }

    enum FolderError: Error, Equatable {
        /// `/get ID DIR` names nothing.
        case missing(String)
        case notAFolder(String)
        case cannotMake(String, String)
        var message: String {
            switch self {
            case .missing(let path): "there is no folder \(path) (make it first, or leave it out for the downloads folder)"
            case .notAFolder(let path): "\(path) is not a folder"
            case .cannotMake(let path, let why): "cannot make \(path): \(why)"
            }
        }
    }

    /// Where a fetch goes: the folder asked for, else `--downloads`, else the XDG download
    /// directory, else ~/Downloads (made when missing). A folder named in `/get` is never made: a
    /// typo would put the file where nobody looks (Docs/CLI.md, "Files").
    static func folder(_ asked: String?, default configured: String?) throws(FolderError) -> String {
        if let asked {
            let path = expand(asked)
            guard let isFolder = isFolder(path) else { throw .missing(asked) }
            guard isFolder else { throw .notAFolder(asked) }
            return path
        }
        let path = configured.map(expand) ?? xdgDownloads() ?? (home() + "/Downloads")
        if let isFolder = isFolder(path) {
            guard isFolder else { throw .notAFolder(path) }
            return path
        }
        if let why = makeFolders(path) { throw .cannotMake(path, why) }
        return path
    }

    /// Whether `path` (links followed) is a folder; nil when nothing is there.
    static func isFolder(_ path: String) -> Bool? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return status.st_mode & S_IFMT == S_IFDIR
    }

    /// Makes `path` and its missing parents, as `mkdir -p`: the last with `mode`, the parents
    /// 0755 (the identity's folder is made here too, 0700). Nil when it is a folder after, else
    /// the system's sentence for why not.
    static func makeFolders(_ path: String, mode: mode_t = 0o755) -> String? {
        let parts = path.pathParts
        var built = path.unicodeScalars.first == "/" ? "" : "."
        for (index, part) in parts.enumerated() {
            built += "/" + part
            if mkdir(built, index == parts.count - 1 ? mode : 0o755) != 0 && errno != EEXIST { return String(cString: strerror(errno)) }
        }
        return isFolder(path) == true ? nil : String(cString: strerror(ENOTDIR))
    }

    /// `XDG_DOWNLOAD_DIR` from the environment or `user-dirs.dirs` (as xdg-user-dirs writes it).
    static func xdgDownloads() -> String? {
        if let value = ProcessInfo.processInfo.environment["XDG_DOWNLOAD_DIR"], !value.isEmpty { return expand(value) }
        let config = ProcessInfo.processInfo.environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home() + "/.config"
        guard let text = try? String(contentsOfFile: config + "/user-dirs.dirs", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("XDG_DOWNLOAD_DIR=") {
            var value = line.dropFirst("XDG_DOWNLOAD_DIR=".count)
            if value.first == "\"" { value = value.dropFirst() }
            if value.last == "\"" { value = value.dropLast() }
            return String(value.replacing("$HOME", with: home()))
        }
        return nil
    }

    /// The user's home: `HOME` when set and not empty, else the account's own (its passwd entry),
    /// never a shared folder such as /tmp. The identity's folder is under it too (`IdentityStore`).
    static func home(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["HOME"], !home.isEmpty { return home }
        guard let entry = getpwuid(getuid()), let directory = entry.pointee.pw_dir else { return "/" }
        return String(cString: directory)
    }

    /// What a `/send` path names (`sendable`).
    enum PathMatches: Equatable {
        /// Taken as it is: it exists, or has no pattern in it (whatever is wrong with it is said
        /// by the offer).
        case literal
        /// A pattern's matches, sorted as glob(3) sorts them (as a shell would give them).
        case matches([String])
        /// A pattern that matches nothing.
        case none
    }

    /// The most paths one pattern offers: `/send *` in a full folder should not post a hundred
    /// offers to the room.
    static let mostMatches = 20

    /// `path` as `/send` takes it: as it is when something has that name or it has no pattern
    /// characters (`*`, `?`, `[`), else glob(3)'s matches.
    static func matches(of path: String) -> PathMatches {
        let full = expand(path)
        var status = stat()
        guard lstat(full, &status) != 0, full.contains(where: { "*?[".contains($0) }) else { return .literal }
        var found = glob_t()
        defer { globfree(&found) }
        guard Glibc.glob(full, 0, nil, &found) == 0 else { return .none }
        // `.*` matches `.` and `..` here; a shell of today skips them (bash's globskipdots), and
        // `/send ~/.*` offering the home folder and its parent would surprise anyone.
        let paths = (0..<Int(found.gl_pathc)).compactMap { found.gl_pathv[$0].map { String(cString: $0) } }
            .filter { ![".", ".."].contains(lastComponent(of: $0)) }
        return paths.isEmpty ? .none : .matches(paths)
    }

    /// `~` and `~/…` as a shell expands them; a relative path stays relative to the working directory.
    static func expand(_ path: String) -> String {
        if path == "~" { return home() }
        if path.hasPrefix("~/") { return home() + path.dropFirst() }
        return path
    }

    /// Runs blocking file work (an `fsync`, listing or hashing a folder, hashing a resumed part)
    /// on a thread of its own, not on the concurrency pool's two nor on `TransferThread`, which
    /// the other transfers share; at the transfers' nice value, below the chat.
    static func offThread<T: Sendable>(name: String = "levchat-disk", _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            OSThread.start(name: name) {
                TransferThread.lowerThisThread()
                continuation.resume(returning: body())
            }
        }
    }

    /// What hashing a file to offer it found: its length and SHA-256 (hex), and the length its
    /// `stat` gives once read. The two differ for the files of /proc and /sys, whose bytes are
    /// made as they are read: those cannot be served as offered (`offer` refuses them).
    struct Hashed {
        var size: Int
        var sha256: String
        var sizeOnDisk: Int
    }

    /// `path` from `/`: a path kept for a later run must not depend on this run's folder.
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// The name a folder is offered under: its own, also when given as `.` or `..`.
    static func folderName(_ path: String) -> String {
        let last = lastComponent(of: path)
        guard last == "." || last == "..", let resolved = realpath(path, nil) else { return last }
        defer { free(resolved) }
        return lastComponent(of: String(cString: resolved))
    }

    /// The last part of a path, trailing slashes ignored (`a/b/` gives `b`, `/` gives `/`), as
    /// `basename` says it.
    static func lastComponent(of path: String) -> String {
        guard let last = path.pathParts.last else { return path.isEmpty ? "" : "/" }
        return last
    }

    /// The size and SHA-256 of a file, read on a thread of its own below the chat (a gigabyte
    /// takes a core for half a second).
    /// Nil when the file cannot be read, or when `stopped` (`/cancel`) says so between two MiB.
    static func hash(_ path: String, unless stopped: @escaping @Sendable () -> Bool = { false }) async -> Hashed? {
        await offThread(name: "levchat-hash") { () -> Hashed? in
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var hasher = FileHasher()
            var size = 0
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                if stopped() { return nil }
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { return nil }
                if count == 0 { break }
                buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                size += count
            }
            var status = stat()
            guard fstat(fd, &status) == 0 else { return nil }
            return Hashed(size: size, sha256: hasher.hex(), sizeOnDisk: Int(status.st_size))
        }
    }

    /// Hashes the first `length` bytes of an open part (a resumed fetch).
    static func hashPrefix(_ fd: Int32, length: Int, into hasher: inout FileHasher) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position = 0
        while position < length {
            let want = min(buffer.count, length - position)
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(position)) }
            guard count > 0 else { return false }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            position += count
        }
        return true
    }

    /// Appends `bytes` (the part is open at its end); the errno of a failed write.
    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        var written = 0
        while written < bytes.count {
            let count = Glibc.write(fd, bytes.baseAddress! + written, bytes.count - written)
            if count < 0 {
                if errno == EINTR { continue }
                return errno
            }
            written += count
        }
        return nil
    }
}

/// Which offer a `.part` holds the beginning of: its SHA-256 in the part's extended attribute
/// `user.levchat.sha256`, set when the fetch opens it. A part marked for another offer (another
/// file of the same name) is left alone, and the fetch takes `NAME (1).part`. A part with no mark
/// (a file system without user attributes, or a part from elsewhere) is taken as this offer's, as
/// before: the final hash check still catches a wrong one.
enum PartMark {
    static let attribute = "user.levchat.sha256"

    static func set(_ offer: FileOffer, on fd: Int32) {
        _ = Array(offer.sha256.utf8).withUnsafeBytes { fsetxattr(fd, attribute, $0.baseAddress, $0.count, 0) }
    }

    /// Whether `path` may be this offer's part: nothing is there yet, or a part of this offer.
    /// Anything else is left alone (the fetch takes another name): a part of another offer, an
    /// entry of the wrong kind (a file where a folder's part would be, a link), or a file without
    /// a mark on a file system that keeps marks, which is the user's own or another program's
    /// (a browser's `report.pdf.part`; taken over, it was cut or deleted). Only where the file
    /// system keeps no marks at all can an unmarked part be ours.
    static func mayHold(_ offer: FileOffer, _ path: String) -> Bool {
        var status = stat()
        guard lstat(path, &status) == 0 else { return true }
        guard status.st_mode & S_IFMT == (offer.isFolder ? S_IFDIR : S_IFREG) else { return false }
        var value = [UInt8](repeating: 0, count: 64)
        let count = value.withUnsafeMutableBytes { getxattr(path, attribute, $0.baseAddress, $0.count) }
        guard count >= 0 else { return errno == EOPNOTSUPP }  // no mark (or a longer one) where marks are kept: not ours
        return String(decoding: value.prefix(count), as: UTF8.self) == offer.sha256
    }
}

/// `--downloads` checked when the run starts, as `/get` will read it (`FileDesk.folder`): not at
/// the first `/get` an hour later. A folder not there yet is made at the first download.
public enum DownloadsOption {
    /// Why `path` cannot be the downloads folder; nil when it can.
    public static func problem(_ path: String) -> String? {
        guard !path.isEmpty else { return "--downloads takes a folder, not an empty name" }
        guard FileDesk.isFolder(FileDesk.expand(path)) != false else {
            return "--downloads takes a folder, and \(ScreenText(escaping: path).rendered) is not one"
        }
        return nil
    }
}
