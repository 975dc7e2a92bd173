#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LevChatCore

/// A folder as the file system knows it (device and inode), whatever path names it.
struct FolderIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64

    init(_ status: stat) {
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }

    /// The folder at `path` (links followed); nil when there is none.
    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { return nil }
        self.init(status)
    }

    /// This user's levchat state folder (`IdentityStore.directory`: the private key, known_peers,
    /// offers), which is never sent: looked up when a folder is first offered, by which time this
    /// run has made it if it is to have one.
    static let privateFolder = FolderIdentity(path: IdentityStore.directory(ProcessInfo.processInfo.environment))
}

/// An offered folder read as one ustar archive at any offset, without the archive being written
/// anywhere (Docs/ARCHITECTURE.md, "Files"). Its entries are listed once, when it is offered:
/// path, kind, mode, time and size, folders before what they hold, names in byte order. Headers
/// are made from that list and file bytes are read from the files as the archive is read, so the
/// offer's hash, every fetch and every resume read the same bytes while the folder stays as it was;
/// a file changed since gives other bytes (the fetcher's hash check refuses them) and one that
/// shrank or went is an error that stops the transfer.
///
/// Until 2026-12-06 a folder was packed into a copy in the temporary directory first: as much
/// room there as the folder (often a RAM-backed tmpfs), and a wait as long as writing it.
final class FolderSource: Sendable {
    struct Entry: Sendable {
        /// From the folder, components joined by `/`.
        let relative: String
        let kind: Ustar.Kind
        let mode: Int
        let mtime: Int
        /// Where its header starts in the archive; its data follows, then zeros to a block.
        let offset: Int

        var dataSize: Int {
            if case .file(let size) = kind { return size }
            return 0
        }
        var end: Int { offset + Ustar.block + dataSize + Ustar.padding(after: dataSize) }
        func header() throws(Ustar.ArchiveError) -> [UInt8] { try Ustar.header(path: relative, kind: kind, mode: mode, mtime: mtime) }
    }

    let root: String
    let entries: [Entry]
    /// Where the two closing zero blocks start.
    let closing: Int
    /// The archive's length.
    let size: Int
    /// Entries left out: neither a folder nor a regular file (links, devices), or not readable.
    let skipped: Int
    /// Entries left out for a name that starts with a dot: hidden ones, often settings and keys
    /// (`.ssh`, `.env`, `.git`), which a receiver would not keep under their names anyway
    /// (`SafeFileName`: no leading dot).
    let hidden: Int
    /// This user's levchat state folder (its private key) was met inside and left out.
    let leftOutPrivate: Bool
    var files: Int { entries.count(where: { $0.kind != .directory }) }

    /// Lists `root` (a folder), leaving out hidden entries and the folder `privateFolder` (this
    /// user's levchat state, `IdentityStore.directory`) wherever it is met. Throws when an entry
    /// cannot be in a ustar archive (a path over 255 bytes, a file over 8 GiB), or `root` itself
    /// cannot be read. The same folder listed again (a fetch from a later run) gives the same list.
    init(_ root: String, privateFolder: FolderIdentity? = FolderIdentity.privateFolder) throws(FolderArchive.Failure) {
        var entries: [Entry] = []
        var skipped = 0, hidden = 0
        var leftOutPrivate = false
        var offset = 0
        func walk(_ relative: String) throws(FolderArchive.Failure) {
            let folder = relative.isEmpty ? root : root + "/" + relative
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
                if relative.isEmpty { throw .changed("cannot read the folder \(root)") }
                skipped += 1
                return
            }
            for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                guard !name.hasPrefix(".") else { hidden += 1; continue }
                let path = relative.isEmpty ? name : relative + "/" + name
                var status = stat()
                guard lstat(root + "/" + path, &status) == 0 else { skipped += 1; continue }
                if status.st_mode & S_IFMT == S_IFDIR, let privateFolder, FolderIdentity(status) == privateFolder {
                    leftOutPrivate = true
                    continue
                }
                let kind: Ustar.Kind
                switch status.st_mode & S_IFMT {
                case S_IFDIR where access(root + "/" + path, R_OK | X_OK) == 0: kind = .directory
                case S_IFREG where access(root + "/" + path, R_OK) == 0: kind = .file(size: Int(status.st_size))
                default:
                    skipped += 1
                    continue
                }
                let entry = Entry(relative: path, kind: kind, mode: Int(status.st_mode), mtime: Int(status.st_mtim.tv_sec), offset: offset)
                do { _ = try entry.header() } catch { throw .archive(error) }
                entries.append(entry)
                offset = entry.end
                if kind == .directory { try walk(path) }
            }
        }
        try walk("")
        self.root = root
        self.entries = entries
        self.skipped = skipped
        self.hidden = hidden
        self.leftOutPrivate = leftOutPrivate
        closing = offset
        size = offset + Ustar.end.count
    }

    /// The whole archive from its start, a mebibyte at a time (its hash, or a copy of it).
    /// False when `stopped` ended it early.
    @discardableResult
    func readWhole(unless stopped: () -> Bool = { false },
                   _ body: (UnsafeRawBufferPointer) throws(FolderArchive.Failure) -> Void) throws(FolderArchive.Failure) -> Bool {
        let reader = Reader(self)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position = 0
        while position < size {
            if stopped() { return false }
            let count = try reader.read(into: &buffer, at: position)
            try buffer.withUnsafeBytes { bytes in
                Result { () throws(FolderArchive.Failure) in try body(UnsafeRawBufferPointer(rebasing: bytes[..<count])) }
            }.get()
            position += count
        }
        return true
    }

    /// The archive's SHA-256 (hex), as its offer carries it; nil when `stopped` (`/cancel`) says
    /// so between two reads.
    func sha256(unless stopped: () -> Bool = { false }) throws(FolderArchive.Failure) -> String? {
        var hasher = FileHasher()
        guard try readWhole(unless: stopped, { hasher.update($0) }) else { return nil }
        return hasher.hex()
    }

    /// The entry whose header, data or padding holds `position` (before `closing`).
    func entry(at position: Int) -> Int {
        var (low, high) = (0, entries.count - 1)
        while low < high {
            let middle = (low + high + 1) / 2
            if entries[middle].offset <= position { low = middle } else { high = middle - 1 }
        }
        return low
    }

    /// Reads the archive for one transfer, keeping the file it is in open between reads.
    final class Reader {
        let source: FolderSource
        private var open: (entry: Int, fd: Int32)?

        init(_ source: FolderSource) { self.source = source }
        deinit { if let open { close(open.fd) } }

        /// Fills `buffer` with the archive's bytes from `position` on, up to its end; how many.
        func read(into buffer: UnsafeMutableRawBufferPointer, at position: Int) throws(FolderArchive.Failure) -> Int {
            var filled = 0
            while filled < buffer.count && position + filled < source.size {
                let at = position + filled
                let room = buffer.count - filled
                guard at < source.closing else {
                    let zeros = min(room, source.size - at)
                    buffer.baseAddress!.advanced(by: filled).initializeMemory(as: UInt8.self, repeating: 0, count: zeros)
                    filled += zeros
                    continue
                }
                let index = source.entry(at: at)
                let entry = source.entries[index]
                let local = at - entry.offset
                if local < Ustar.block {
                    let header: [UInt8]
                    do { header = try entry.header() } catch { throw .archive(error) }
                    let count = min(room, Ustar.block - local)
                    header.withUnsafeBytes { buffer.baseAddress!.advanced(by: filled).copyMemory(from: $0.baseAddress! + local, byteCount: count) }
                    filled += count
                } else if local - Ustar.block < entry.dataSize {
                    let within = local - Ustar.block
                    let fd = try file(index)
                    let want = min(room, entry.dataSize - within)
                    let got = pread(fd, buffer.baseAddress! + filled, want, off_t(within))
                    if got < 0 && errno == EINTR { continue }
                    guard got >= 0 else { throw .io("cannot read \(source.root)/\(entry.relative)", errno) }
                    guard got > 0 else { throw .changed("\(source.root)/\(entry.relative) is shorter than it was") }
                    filled += got
                } else {
                    let zeros = min(room, entry.end - at)
                    buffer.baseAddress!.advanced(by: filled).initializeMemory(as: UInt8.self, repeating: 0, count: zeros)
                    filled += zeros
                }
            }
            return filled
        }

        /// The same into an array, from its start.
        func read(into buffer: inout [UInt8], at position: Int) throws(FolderArchive.Failure) -> Int {
            try buffer.withUnsafeMutableBytes { bytes in
                Result { () throws(FolderArchive.Failure) in try read(into: bytes, at: position) }
            }.get()
        }

        /// The open file of entry `index`; it must still be a regular file (never a FIFO or a link
        /// put in its place since the offer).
        private func file(_ index: Int) throws(FolderArchive.Failure) -> Int32 {
            if let open, open.entry == index { return open.fd }
            if let open { close(open.fd) }
            open = nil
            let path = source.root + "/" + source.entries[index].relative
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW)
            guard fd >= 0 else {
                switch errno {
                case ENOENT: throw .changed("\(path) is gone")
                case ELOOP: throw .changed("\(path) is a link now")
                default: throw .io("cannot read \(path)", errno)
                }
            }
            var status = stat()
            guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
                close(fd)
                throw .changed("\(path) is no longer a regular file")
            }
            open = (index, fd)
            return fd
        }
    }
}
