#if canImport(Glibc)
import Glibc
#endif
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

/// `/get`: a fetch from the sender's listener into its part (`PartWriter`), resumed from what the
/// part holds, moved into place only when the whole file's SHA-256 matches the signed offer
/// (Docs/PROTOCOL.md, "Files").
extension FileDesk {
    private enum FetchEnd {
        case complete
        case linkEnded(at: Int)
        case stalled(at: Int)
        /// The sender answered with an error; `lasting` when asking again cannot help (it does not
        /// offer that file, or the file changed since its offer), unlike `busy`.
        case refused(String, lasting: Bool)
        case moreThanOffered
        case malformed(String)
        case disk(Int32, at: Int)
        /// A folder's archive that cannot be unpacked safely (or whole).
        case badFolder(String)
        case cancelled(at: Int)
        /// The sender's user cancelled it (`error {cancelled}`); `/get` again resumes it.
        case cancelledBySender(at: Int)
    }

    func fetch(_ entry: FileBoard.Entry, from sender: Member?, folder: String, part: String) async {
        let offer = entry.offer
        // The part: a file's bytes as they come, or a folder unpacked as its archive comes. What
        // is already there is where this fetch starts, and it is hashed first (the final hash
        // covers the whole file). Gigabytes, maybe: on a thread of its own, not the pool's.
        let opened: Result<(PartWriter, FileHasher), PartFailure> = await FileDesk.offThread {
            offer.isFolder ? PartWriter.openFolder(part, for: offer) : PartWriter.openFile(part, for: offer)
        }
        let writer: PartWriter, hasher: FileHasher
        switch opened {
        case .success(let (opened, prefix)): (writer, hasher) = (opened, prefix)
        case .failure(let failure):
            console.showFile(.failed(id: entry.id, name: offer.name, reason: failure.reason, resumable: false))
            return
        }
        defer { writer.close() }
        let offset = writer.position
        // A fetch that ends with nothing written leaves no empty part behind to puzzle over.
        func dropPartIfEmpty() { if writer.position == 0 { writer.remove(part) } }
        guard let sender, !sender.endpoints.isEmpty else {
            dropPartIfEmpty()
            console.showFile(.failed(id: entry.id, name: offer.name, reason: "\(entry.from) is not in the room", resumable: offset > 0))
            return
        }
        console.showFile(.started(entry, offset: offset))
        var end: FetchEnd?
        var progress = Progress(size: offer.size, json: console.json, statusRow: console.showsStatusRows, start: offset, clock: settings.clock)
        let hashing = HashingThread(continuing: hasher)
        for endpoint in sender.endpoints.prefix(3) {
            if Task.isCancelled { break }
            do throws(ConnectError) {
                end = try await SecureLink.connect(to: endpoint, over: settings.network, keyring: keyring, role: "fetch",
                                                   connectTimeout: settings.connectTimeout, handshakeTimeout: settings.timings.handshakeTimeout,
                                                   connected: { [self] channel in self.state.withLock { $0.fetching[entry.id]?.channel = channel } }) { link in
                    await receive(&link, entry: entry, from: offset, into: writer, hashing: hashing, progress: &progress)
                }
                break
            } catch {
                logger.info("fetch of \(offer.name) from \(endpoint): \(error)")
                continue
            }
        }
        if Task.isCancelled, case .linkEnded(let at)? = end { end = .cancelled(at: at) }
        // Every path ends the hashing thread; only a whole file's digest is looked at.
        let digest = await hashing.finish()
        guard let end else {
            dropPartIfEmpty()
            console.showFile(Task.isCancelled ? .cancelled(id: entry.id, name: offer.name)
                                              : .failed(id: entry.id, name: offer.name, reason: "could not reach \(entry.from)", resumable: true))
            return
        }
        switch end {
        case .complete, .disk, .moreThanOffered, .badFolder: break
        default: dropPartIfEmpty()
        }
        let kind = offer.isFolder ? "folder" : "file"
        switch end {
        case .complete:
            // A gigabyte's fsync can take seconds: on a thread of its own, not the pool's.
            await FileDesk.offThread { writer.finishWriting() }
            guard digest == offer.sha256 else {
                writer.remove(part)
                console.showFile(.failed(id: entry.id, name: offer.name,
                                         reason: "what arrived does not match the offer's SHA-256; the partial \(kind) was deleted", resumable: false))
                return
            }
            // The first name nothing is at (a dangling link counts), and the next one should
            // something appear there before the rename.
            var path = "", delivered: PartFailure?
            for _ in 0..<8 {
                var status = stat()
                path = folder + "/" + SafeFileName.unused(SafeFileName.make(offer.name)) { lstat(folder + "/" + $0, &status) == 0 }
                delivered = writer.deliver(part, to: path)
                guard delivered?.taken == true else { break }
            }
            if let failure = delivered {
                console.showFile(.failed(id: entry.id, name: offer.name, reason: failure.reason, resumable: false))
                return
            }
            console.showFile(.received(entry, path: path))
        case .linkEnded(let at):
            console.showFile(.failed(id: entry.id, name: offer.name,
                                     reason: "the link to \(entry.from) ended at \(ByteCount.describe(at)) of \(ByteCount.describe(offer.size))",
                                     resumable: true))
        case .stalled(let at):
            console.showFile(.failed(id: entry.id, name: offer.name,
                                     reason: "nothing came from \(entry.from) for \(stallTimeout.components.seconds) s, at \(ByteCount.describe(at)) of \(ByteCount.describe(offer.size))",
                                     resumable: true))
        case .refused(let why, let lasting):
            console.showFile(.failed(id: entry.id, name: offer.name, reason: "\(entry.from)'s peer refused: \(why)", resumable: !lasting))
        case .moreThanOffered:
            writer.remove(part)
            console.showFile(.failed(id: entry.id, name: offer.name,
                                     reason: "the sender sent more than the \(offer.size) bytes offered; cut off, the partial \(kind) was deleted",
                                     resumable: false))
        case .badFolder(let why):
            writer.remove(part)
            console.showFile(.failed(id: entry.id, name: offer.name, reason: "the folder cannot be unpacked (\(why)); nothing of it was kept",
                                     resumable: false))
        case .malformed(let why):
            console.showFile(.failed(id: entry.id, name: offer.name, reason: "the sender broke the protocol (\(why)); cut off", resumable: true))
        case .disk(let code, let at):
            let why = code == ENOSPC ? "the disk is full" : String(cString: strerror(code))
            console.showFile(.failed(id: entry.id, name: offer.name,
                                     reason: "\(why) at \(ByteCount.describe(at)); \(part) is kept", resumable: true))
        case .cancelled:
            console.showFile(.cancelled(id: entry.id, name: offer.name))
        case .cancelledBySender(let at):
            console.showFile(.failed(id: entry.id, name: offer.name,
                                     reason: "\(entry.from) cancelled sending it at \(ByteCount.describe(at)) of \(ByteCount.describe(offer.size))",
                                     resumable: true))
        }
    }

    private func receive(_ link: inout SecureLink, entry: FileBoard.Entry, from offset: Int, into writer: PartWriter, hashing: HashingThread,
                         progress: inout Progress) async -> FetchEnd {
        let offer = entry.offer
        do {
            // Always signed: an offer to this peer alone needs it, and the sender can name who fetched.
            try await link.send(.fetch(identity.fetch(offer.file, offset: offset, room: link.roomID, binding: link.binding,
                                                      cipher: settings.fileCipher)))
            switch try await link.receive() {
            case .file(let start)?:
                guard start.size == offer.size, start.offset == offset else {
                    return .malformed("it answered for \(start.size) bytes from \(start.offset)")
                }
                if let name = start.cipher {
                    guard let cipher = LinkCipher(rawValue: name), cipher == settings.fileCipher else {
                        return .malformed("it chose the cipher \(name), which this peer did not offer")
                    }
                    link.reader.switchTo(cipher)
                }
            case .error(let info)?:
                return .refused(info.message.description, lasting: info.code == ErrorCode.noFile.rawValue)
            case nil:
                return .linkEnded(at: offset)
            case let other?:
                return .malformed("\(other.typeName) in place of file")
            }
        } catch {
            return .linkEnded(at: offset)
        }
        var bytes = offset
        var watch = StallWatch(link, timeout: stallTimeout)
        defer { watch.stop() }
        while bytes < offer.size {
            let record: FileRecord?
            do { record = try await link.receiveFileRecord() } catch { return ended(at: bytes, stalled: watch.fired) }
            guard let record else { return ended(at: bytes, stalled: watch.fired) }
            watch.moved()
            let chunk: Data
            switch record {
            case .data(let bytes): chunk = bytes
            case .message(.error(let info)) where info.code == ErrorCode.cancelled.rawValue:
                return .cancelledBySender(at: bytes)
            case .message(.error(let info)):
                // The sender cannot go on (its file or folder changed since the offer).
                return .refused(info.message.description, lasting: info.code == ErrorCode.noFile.rawValue)
            case .message(let message): return .malformed("\(message.typeName) in place of data")
            }
            guard chunk.count <= offer.size - bytes else { return .moreThanOffered }
            // Written from where it was opened (no copy of 60 KiB per record), then hashed on the
            // hashing thread while the next records are opened and written.
            switch chunk.withUnsafeBytes({ writer.write($0) }) {
            case nil: break
            case .disk(let code)?: return .disk(code, at: bytes)
            case .archive(let why)?: return .badFolder(why)
            }
            await hashing.feed(chunk)
            bytes += chunk.count
            if let rate = progress.advanced(to: bytes) { console.showFile(.progress(entry, bytes: bytes, rate: rate)) }
            // Records wait in the stream whenever the disk is slower than the link, so this loop
            // may never suspend: after each record it lets the chat's tasks run (measured: a
            // yield per record beat one per 16 on chat p99 and on rate, Docs/BENCHMARKS.md).
            await Task.yield()
            if Task.isCancelled { return .cancelled(at: bytes) }
        }
        // Every byte offered is here: the sender hears their hash (its `sent` waits for it). A
        // record of its own after the last byte is not read: what counts is the bytes offered.
        let digest = await hashing.finish()
        try? await link.send(.done(FileDone(sha256: digest)))
        return .complete
    }

    private func ended(at bytes: Int, stalled: Bool) -> FetchEnd {
        if Task.isCancelled { return .cancelled(at: bytes) }
        return stalled ? .stalled(at: bytes) : .linkEnded(at: bytes)
    }

    /// Progress as the user sees it: a status row on the terminal at most 10 times a second,
    /// JSON at most once a second, other text every 10 %.
}

/// When a transfer's progress is due (either side): on the terminal screen at most 10 times a
/// second (a status row), in JSON at most once a second, through a pipe at each tenth.
struct Progress {
    let size: Int
    let json: Bool
    let statusRow: Bool
    let clock: PeerClock
    let started: Duration
    let start: Int
    var lastShown: Duration
    var lastTenth: Int

    init(size: Int, json: Bool, statusRow: Bool, start: Int, clock: PeerClock) {
        self.clock = clock
        started = clock.now().monotonic
        lastShown = started
        self.size = size
        self.json = json
        self.statusRow = statusRow
        self.start = start
        lastTenth = size == 0 ? 10 : start * 10 / size
    }

    /// The rate so far (bytes a second) when progress at `bytes` is due, else nil.
    mutating func advanced(to bytes: Int) -> Double? {
        let now = clock.now().monotonic
        let due: Bool
        if statusRow {
            due = now - lastShown >= .milliseconds(100)
        } else if json {
            due = now - lastShown >= .seconds(1)
        } else {
            let tenth = bytes * 10 / max(size, 1)
            due = tenth > lastTenth && tenth < 10
            if due { lastTenth = tenth }
        }
        guard due else { return nil }
        lastShown = now
        let elapsed = Double((now - started).components.attoseconds) / 1e18 + Double((now - started).components.seconds)
        return elapsed > 0 ? Double(bytes - start) / elapsed : 0
    }
}
