#if canImport(Glibc)
import Glibc
#endif
import LevChatCore

/// Why a part cannot be opened or delivered: one sentence for the user.
struct PartFailure: Error {
    let reason: String
    /// The name to deliver to was taken between its choice and the rename: take the next one.
    var taken = false
}

/// Where a fetch's bytes go (Docs/ARCHITECTURE.md, "Files"): `NAME.part`, a file that is renamed
/// to the download once its hash is the offer's, or, for a folder, the folder `NAME.part/` its
/// archive is unpacked into as it arrives (`FolderReceiver`). One fetch's own: made on the thread
/// that hashes what the part already holds and handed to the fetch's task, never shared, hence
/// `@unchecked Sendable`.
final class PartWriter: @unchecked Sendable {
    enum WriteFailure {
        /// A write failed (ENOSPC: the disk is full); the part is kept for a later `/get`.
        case disk(Int32)
        /// A folder's archive that cannot be unpacked safely.
        case archive(String)
    }

    private enum Kind {
        case file(Int32, FileDesk.Writeback)
        case folder(FolderReceiver)
    }

    private var kind: Kind
    private var closed = false
    /// The bytes of the file (or of the folder's archive) the part holds.
    private(set) var position: Int

    private init(_ kind: Kind, position: Int) {
        self.kind = kind
        self.position = position
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> WriteFailure? {
        switch kind {
        case .file(let fd, var writeback):
            if let code = FileDesk.write(fd, bytes) { return .disk(code) }
            position += bytes.count
            writeback.wrote(upTo: position)
            kind = .file(fd, writeback)
            return nil
        case .folder(let receiver):
            defer { position = receiver.position }
            do throws(FolderArchive.Failure) {
                try receiver.write(bytes)
                return nil
            } catch {
                if case .io(_, let code) = error, code == ENOSPC || code == EDQUOT || code == EIO { return .disk(code) }
                return .archive(error.description)
            }
        }
    }

    /// Every byte is here: a file is made durable before it is renamed (its `fsync` can take
    /// seconds: call off the concurrency pool). A folder's files are not synced one by one (a
    /// folder of 20,000 files would wait for 20,000 journal commits), as `tar` does not.
    func finishWriting() {
        if case .file(let fd, _) = kind { fsync(fd) }
        close()
    }

    /// Closes a file's descriptor, once however often it is called (a folder's close with it).
    func close() {
        guard !closed else { return }
        closed = true
        if case .file(let fd, _) = kind { Glibc.close(fd) }
    }

    /// The part at `part`, gone (a hash that failed, a sender that sent too much, or nothing
    /// written).
    func remove(_ part: String) {
        switch kind {
        case .file: unlink(part)
        case .folder: FolderReceiver.remove(part)
        }
    }

    /// The verified part moved to `path`, which does not exist; nil when done. A part that
    /// cannot be moved stays; a folder's archive that ended inside an entry is removed.
    func deliver(_ part: String, to path: String) -> PartFailure? {
        switch kind {
        case .file:
            // Never over an entry of the user's, not even one made since the name was chosen (a
            // plain rename replaces a file, or a link, without a word).
            let code = FileDesk.moveWithoutReplacing(part, to: path)
            guard code == 0 else { return PartFailure(reason: "cannot rename \(part): \(String(cString: strerror(code)))", taken: code == EEXIST) }
            return nil
        case .folder(let receiver):
            do throws(FolderArchive.Failure) { try receiver.finish() } catch {
                remove(part)
                return PartFailure(reason: "the folder cannot be unpacked (\(error)); nothing of it was kept")
            }
            do throws(FolderArchive.Failure) { try receiver.deliver(to: path) } catch {
                if case .io(_, EEXIST) = error { return PartFailure(reason: "\(error); it stays as \(part)", taken: true) }
                return PartFailure(reason: "\(error); it stays as \(part)")
            }
            return nil
        }
    }

    /// `NAME.part` for a file: what it holds is where the fetch starts. A part longer than the
    /// file is not this file's, and starts again.
    static func openFile(_ part: String, for offer: FileOffer) -> Result<(PartWriter, FileHasher), PartFailure> {
        let fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)  // as the umask allows, like any download
        guard fd >= 0 else { return .failure(PartFailure(reason: "cannot write \(part): \(String(cString: strerror(errno)))")) }
        PartMark.set(offer, on: fd)
        var offset = Int(lseek(fd, 0, SEEK_END))
        if offset > offer.size {
            _ = ftruncate(fd, 0)
            offset = Int(lseek(fd, 0, SEEK_SET))
        }
        var hasher = FileHasher()
        guard FileDesk.hashPrefix(fd, length: offset, into: &hasher) else {
            Glibc.close(fd)
            return .failure(PartFailure(reason: "cannot read \(part)"))
        }
        return .success((PartWriter(.file(fd, FileDesk.Writeback(fd: fd, from: offset)), position: offset), hasher))
    }

    /// `NAME.part/` for a folder: what it holds (its journal's entries, each file as far as it
    /// reached) is where the fetch starts. A part that cannot be read back as an archive, or
    /// holds more than the offer, starts again.
    static func openFolder(_ part: String, for offer: FileOffer) -> Result<(PartWriter, FileHasher), PartFailure> {
        for attempt in 0..<2 {
            var hasher = FileHasher()
            do throws(FolderArchive.Failure) {
                let receiver = try FolderReceiver.open(part, hashingInto: &hasher)
                guard receiver.position <= offer.size else {
                    FolderReceiver.remove(part)
                    continue
                }
                let fd = open(part, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                if fd >= 0 {
                    PartMark.set(offer, on: fd)
                    Glibc.close(fd)
                }
                return .success((PartWriter(.folder(receiver), position: receiver.position), hasher))
            } catch {
                if case .archive = error, attempt == 0 {
                    FolderReceiver.remove(part)
                    continue
                }
                return .failure(PartFailure(reason: "cannot write \(part): \(error)"))
            }
        }
        return .failure(PartFailure(reason: "cannot write \(part)"))
    }
}
