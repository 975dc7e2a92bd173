#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LevChatCore

/// A folder's archive unpacked as it arrives (Docs/PROTOCOL.md, "Folders"), into its part: a
/// folder `NAME.part/` that becomes `NAME` once the whole archive's SHA-256 is the offer's. Every
/// byte is written once, where it belongs; before 2026-12-06 the archive was written whole into a
/// `.part` file and then unpacked beside it, so a folder needed twice its size for a while and its
/// files were written twice (Docs/BENCHMARKS.md, "Folders").
///
/// A fetch resumes from what the part holds. Each header block is kept, in order, in the part's
/// journal (`.levchat-headers`; no entry can take that name, `SafeFileName` never starts one with
/// a dot) before its entry is made, so a later run reads the archive back, header by header with
/// each file's bytes as far as they reached, and starts the fetch there with the hash of all of
/// it. Padding before a journaled header is taken as zeros (what `FolderSource` sends); an archive
/// whose padding was not fails the final hash check after a resume, never before.
///
/// Entries are made under the part only, each path component a safe name, through real folders
/// only (never a link), files created with `O_EXCL`.
final class FolderReceiver {
    static let journalName = ".levchat-headers"

    private enum Step {
        /// The bytes of a header block so far.
        case header([UInt8])
        case data(fd: Int32, path: String, left: Int, padding: Int)
        case padding(left: Int)
        /// A zero block came: the rest of the archive is not looked at.
        case ended
    }

    let root: String
    /// The archive's bytes taken so far.
    private(set) var position: Int
    private let journal: Int32
    private var step: Step

    private init(root: String, journal: Int32, position: Int, step: Step) {
        self.root = root
        self.journal = journal
        self.position = position
        self.step = step
    }

    deinit {
        if case .data(let fd, _, _, _) = step { close(fd) }
        close(journal)
    }

    /// The part at `root` (made when missing; an older run's archive file there is replaced), and
    /// where its archive stands: `position` is where the fetch resumes, and `hasher` has taken
    /// every byte before it.
    static func open(_ root: String, hashingInto hasher: inout FileHasher) throws(FolderArchive.Failure) -> FolderReceiver {
        var status = stat()
        if lstat(root, &status) == 0, status.st_mode & S_IFMT != S_IFDIR { unlink(root) }
        if mkdir(root, 0o777) != 0 && errno != EEXIST { throw .io("cannot make \(root)", errno) }
        try FolderArchive.requireFolder(root)
        let journal = Glibc.open(root + "/" + journalName, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard journal >= 0 else { throw .io("cannot write \(root)", errno) }
        let receiver = FolderReceiver(root: root, journal: journal, position: 0, step: .header([]))  // closes it, whatever follows
        // Read a block at a time (a folder of a million entries has a journal of 512 MB). A
        // header cut short by a crash is not one.
        var journalStatus = stat()
        guard fstat(journal, &journalStatus) == 0 else { throw .io("cannot read \(root)", errno) }
        let count = Int(journalStatus.st_size) / Ustar.block
        var kept = 0
        var block = [UInt8](repeating: 0, count: Ustar.block)
        for index in 0..<count {
            let got = block.withUnsafeMutableBytes { pread(journal, $0.baseAddress, Ustar.block, off_t(index * Ustar.block)) }
            guard got == Ustar.block else { break }
            // After a file that is not whole, nothing more is taken (a crash can keep a later
            // header and lose the bytes before it): what follows is received again, and what
            // those headers made goes.
            guard case .header = receiver.step else {
                try receiver.undo(block)
                continue
            }
            guard try receiver.replay(block, last: index == count - 1, hashingInto: &hasher) else { break }
            kept += Ustar.block
        }
        guard ftruncate(journal, off_t(kept)) == 0, lseek(journal, off_t(kept), SEEK_SET) >= 0 else {
            throw .io("cannot write \(root)", errno)
        }
        return receiver
    }

    /// The file a journal header made, removed (a folder stays: it is made again anyway).
    private func undo(_ block: [UInt8]) throws(FolderArchive.Failure) {
        guard let entry = try? Ustar.entry(block), case .file = entry.kind else { return }
        unlink(try place(entry))
    }

    /// The entry a header block describes; nil for a zero block (the archive's end).
    private static func entry(_ block: [UInt8]) throws(FolderArchive.Failure) -> (path: [String], kind: Ustar.Kind)? {
        do { return try Ustar.entry(block) } catch { throw .archive(error) }
    }

    /// Where `entry` goes under the part, its folders made (each a real folder, never a link, so
    /// nothing leads out); a folder entry is made itself.
    private func place(_ entry: (path: [String], kind: Ustar.Kind)) throws(FolderArchive.Failure) -> String {
        let path = try FolderArchive.makeFolders(entry.path.dropLast(), under: root) + "/" + entry.path.last!
        if entry.kind == .directory {
            if mkdir(path, 0o777) != 0 && errno != EEXIST { throw .io("cannot make \(path)", errno) }
            try FolderArchive.requireFolder(path)
        }
        return path
    }

    /// One journal header again: its entry as far as it reached, hashed. False for a zero block.
    /// A whole file's padding came if another header followed it (`last` false); after the last
    /// one it is received again.
    private func replay(_ block: [UInt8], last: Bool, hashingInto hasher: inout FileHasher) throws(FolderArchive.Failure) -> Bool {
        guard let entry = try Self.entry(block) else { return false }
        hasher.update(block)
        position += Ustar.block
        let path = try place(entry)
        switch entry.kind {
        case .directory:
            return true
        case .file(let size):
            // The file as far as it reached (made now if the crash came before it was).
            let fd = Glibc.open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, Ustar.creationMode(block))
            guard fd >= 0 else { throw .io("cannot create \(path)", errno) }
            var status = stat()
            guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
                close(fd)
                throw .io("\(path) is not a file", EEXIST)
            }
            let have = min(Int(status.st_size), size)
            var hashed = 0
            var buffer = [UInt8](repeating: 0, count: min(max(have, 1), 1 << 20))
            while hashed < have {
                let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, min($0.count, have - hashed), off_t(hashed)) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else {
                    close(fd)
                    throw .io("cannot read \(path)", count < 0 ? errno : EIO)
                }
                buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                hashed += count
            }
            position += have
            guard ftruncate(fd, off_t(have)) == 0, lseek(fd, off_t(have), SEEK_SET) >= 0 else {
                close(fd)
                throw .io("cannot write \(path)", errno)
            }
            let padding = Ustar.padding(after: size)
            if have < size {
                step = .data(fd: fd, path: path, left: size - have, padding: padding)
                return true
            }
            close(fd)
            if last {
                step = padding > 0 ? .padding(left: padding) : .header([])
            } else {
                hasher.update([UInt8](repeating: 0, count: padding))
                position += padding
            }
            return true
        }
    }

    /// Takes the archive's next bytes. Throws `.io` (ENOSPC for a full disk; the part is kept and
    /// a fetch resumes from it) or `.archive` (the archive cannot be unpacked safely).
    func write(_ bytes: UnsafeRawBufferPointer) throws(FolderArchive.Failure) {
        var offset = 0
        while offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            switch step {
            case .ended:
                position += rest.count
                return
            case .header(var block):
                let take = min(Ustar.block - block.count, rest.count)
                block += rest.prefix(take)
                offset += take
                position += take
                guard block.count == Ustar.block else {
                    step = .header(block)
                    continue
                }
                try begin(block)
            case .data(let fd, let path, let left, let padding):
                let count = min(left, rest.count)
                if let code = FileDesk.write(fd, UnsafeRawBufferPointer(rebasing: rest.prefix(count))) {
                    // What a failed write left in the file is not counted: it is written again.
                    throw .io("cannot write \(path)", code)
                }
                offset += count
                position += count
                if count == left {
                    close(fd)
                    step = padding > 0 ? .padding(left: padding) : .header([])
                } else {
                    step = .data(fd: fd, path: path, left: left - count, padding: padding)
                }
            case .padding(let left):
                let count = min(left, rest.count)
                offset += count
                position += count
                step = count == left ? .header([]) : .padding(left: left - count)
            }
        }
    }

    /// A whole header block: its entry is kept in the journal, then made.
    private func begin(_ block: [UInt8]) throws(FolderArchive.Failure) {
        guard let entry = try Self.entry(block) else {
            step = .ended
            return
        }
        if let code = block.withUnsafeBytes({ FileDesk.write(journal, $0) }) { throw .io("cannot write \(root)", code) }
        let path = try place(entry)
        switch entry.kind {
        case .directory:
            step = .header([])
        case .file(let size):
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, Ustar.creationMode(block))
            guard fd >= 0 else { throw .io("cannot create \(path)", errno) }
            if size > 0 {
                step = .data(fd: fd, path: path, left: size, padding: Ustar.padding(after: size))
            } else {
                close(fd)
                step = .header([])
            }
        }
    }

    /// The archive's bytes are all here: it must have ended between entries.
    func finish() throws(FolderArchive.Failure) {
        switch step {
        case .ended: return
        case .header(let block) where block.isEmpty: return
        default: throw .archive(.truncated)
        }
    }

    /// The unpacked folder moved to `path` (which must not exist), then without its journal.
    /// When the move fails the part stays as it is: whole, and found again by a later `/get`.
    func deliver(to path: String) throws(FolderArchive.Failure) {
        let code = FileDesk.moveWithoutReplacing(root, to: path)
        guard code == 0 else { throw .io("cannot rename \(root)", code) }
        unlink(path + "/" + Self.journalName)
    }

    /// Removes a part folder whole (a folder that failed its hash, or could not be unpacked).
    static func remove(_ root: String) {
        try? FileManager.default.removeItem(atPath: root)
    }
}
