#if canImport(Glibc)
import Glibc
#endif
import LevChatCore
import LevChatTransport
import Logging
import NIOCore
import Synchronization

/// Serving a fetch of one of this peer's offers (Docs/PROTOCOL.md, "Files").
extension FileDesk {
    /// A link whose first message was `fetch`: the file from the asked offset, then the link
    /// waits for the fetcher to close it (it does once it has every byte).
    func serve(_ link: inout SecureLink, _ fetch: Fetch) async {
        await withTaskExecutorPreference(TransferThread.shared) { await serveHere(&link, fetch) }
    }

    private func serveHere(_ link: inout SecureLink, _ fetch: Fetch) async {
        // An offer of this run, else one of an earlier run of this user in this room (a sender
        // killed mid-transfer and back: the fetch resumes).
        guard let shared = state.withLock({ $0.shared[fetch.file] })
                ?? settings.offeredFiles?.entry(file: fetch.file, room: link.roomID).map({
                    Shared(source: $0.offer.isFolder ? .keptFolder($0.path) : .file($0.path), offer: $0.offer)
                }) else {
            try? await link.send(.error(ErrorInfo(code: .noFile, message: "this peer does not offer that file")))
            return
        }
        let fetcher = FetchProof.prover(of: fetch, room: link.roomID, binding: link.binding)
        if let recipient = shared.offer.recipient, fetcher != recipient {
            // The same answer as for a file not offered at all: nothing to learn by asking.
            logger.info("refused \(shared.offer.name) to \(link.remoteHost): offered to another member")
            try? await link.send(.error(ErrorInfo(code: .noFile, message: "this peer does not offer that file")))
            return
        }
        let channel = link.channel
        let ticket: UInt64? = state.withLock { state in
            guard state.serving.count < FileDesk.servingAtOnce else { return nil }
            defer { state.nextServing += 1 }
            state.serving[state.nextServing] = (fetch.file, channel)
            return state.nextServing
        }
        guard let ticket else {
            try? await link.send(.error(ErrorInfo(code: .busy, message: "serving \(FileDesk.servingAtOnce) transfers already; try again soon")))
            return
        }
        defer { state.withLock { _ = $0.serving.removeValue(forKey: ticket); _ = $0.cancelledServing.remove(ticket) } }
        let offer = shared.offer
        let bytes: OfferedBytes
        switch shared.source {
        case .file(let path):
            switch openOffered(path, offer, askedBy: fetcher.flatMap(console.memberName) ?? "a member") {
            case .success(let file): bytes = file
            case .failure(let refusal):
                try? await link.send(.error(ErrorInfo(code: .noFile, message: refusal.message)))
                return
            }
        case .folder(let source):
            bytes = .folder(FolderSource.Reader(source))
        case .keptFolder(let path):
            // Listed again, off this thread: served while it makes an archive of the offered
            // length (the fetcher's hash check covers the bytes).
            let listed = await FileDesk.offThread { try? FolderSource(path) }
            guard let source = listed, source.size == offer.size else {
                if firstTimeCannotServe(offer) {
                    console.show(.notice("\(offer.name)/ changed since you offered it, so it cannot be sent; /send it again"))
                }
                try? await link.send(.error(ErrorInfo(code: .noFile, message: "the folder changed since it was offered")))
                return
            }
            bytes = .folder(FolderSource.Reader(source))
        }
        guard fetch.offset <= offer.size else {
            try? await link.send(.error(ErrorInfo(code: .protocolError, message: "an offset past the end of the file")))
            return
        }
        // AES-256-GCM when the fetcher offers it and this machine has it in hardware too.
        let cipher = fetch.cipher.flatMap(LinkCipher.init(rawValue:)).flatMap { $0 == settings.fileCipher ? $0 : nil }
        let who = fetcher.flatMap(console.memberName)
        let to = who ?? link.remoteHost
        // What the user sees of it: progress, as a download's, and why it stopped if it did (a
        // `/cancel` here says so itself). Offers not on the board (none) go unshown.
        let entry = console.ownOffer(file: offer.file)
        let row = -Int(ticket) - 1  // download rows are the offers' ids, upward from 1
        var position = fetch.offset
        func ended(_ stopped: String?) {
            guard let entry else { return }
            // Nothing said of why when this user stopped it: a `/cancel`, or leaving the room.
            let said = state.withLock { $0.cancelledServing.contains(ticket) || $0.leaving }
            console.showFile(.sendEnded(entry, to: to, row: row, bytes: position, stopped: said ? nil : stopped))
        }
        var watch = StallWatch(link, timeout: stallTimeout)
        do {
            try await link.send(.file(FileStart(size: offer.size, offset: fetch.offset, cipher: cipher)))
            if let cipher { link.sealer.switchTo(cipher) }
            logger.info("serving \(offer.name) to \(link.remoteHost) from byte \(fetch.offset) with \(link.sealer.cipher.rawValue)")
            // The `data` type, then the bytes read straight after it: the record's plaintext.
            var buffer = [UInt8](repeating: 0, count: 1 + FileDesk.chunkBytes)
            buffer[0] = WireMessage.dataType
            let started = settings.clock.now().monotonic
            var progress = Progress(size: offer.size, json: console.json, statusRow: console.showsStatusRows, start: fetch.offset, clock: settings.clock)
            while position < offer.size {
                watch.moved()
                if state.withLock({ $0.cancelledServing.contains(ticket) }) {
                    // `/cancel` here: the fetcher is told, in place of the next record, so that
                    // it can say so (a closed link alone reads as a lost one).
                    watch.stop()
                    try? await link.send(.error(ErrorInfo(code: .cancelled, message: "the sender cancelled this transfer")))
                    ended(nil)
                    return
                }
                let count: Int
                do {
                    count = try buffer.withUnsafeMutableBytes { buffer throws(FolderArchive.Failure) in
                        try bytes.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[1..<min(buffer.count, 1 + offer.size - position)]), at: position)
                    }
                } catch {
                    watch.stop()
                    if case .changed(let what)? = error as? FolderArchive.Failure {
                        // Asking again cannot help: the fetcher is told so, and stops for good.
                        let kind = offer.isFolder ? "folder" : "file"
                        try? await link.send(.error(ErrorInfo(code: .noFile, message: "the \(kind) changed since it was offered")))
                        ended("the \(kind) changed since you offered it (\(what)); /send it again")
                    } else {
                        ended("it could not be read here (\(error))")
                    }
                    return
                }
                try await link.send(plaintext: buffer[..<(1 + count)])
                position += count
                if let entry, let rate = progress.advanced(to: position) {
                    console.showFile(.sending(entry, to: to, row: row, bytes: position, rate: rate))
                }
                await Task.yield()  // as the fetcher does: chat first
                if let rate = settings.fileRate {
                    try? await settings.clock.sleep(until: started + .seconds(Double(position - fetch.offset) / Double(rate)))
                }
            }
        } catch {
            watch.stop()
            logger.info("serving \(offer.name) to \(link.remoteHost) ended: \(error)")
            ended(watch.fired ? "nothing moved for \(stallTimeout.components.seconds) s" : "the link ended (a /get there resumes it)")
            return
        }
        watch.stop()
        ended(nil)
        // Every byte is written; the fetcher answers `done` with their hash once it has them all.
        // Only that is a file delivered: a link that merely ends may have died with bytes unread.
        let deadline = link.closeAfter(stallTimeout)
        defer { deadline.cancel() }
        let answer: WireMessage?
        do { answer = try await link.receive() } catch { answer = nil }
        guard !state.withLock({ $0.cancelledServing.contains(ticket) }) else { return }
        guard case .done(let done)? = answer else {
            logger.info("serving \(offer.name) to \(link.remoteHost): the link ended before the fetcher said it had every byte")
            ended("every byte went out, but the link ended before the fetcher said it had them all")
            return
        }
        guard done.sha256 == offer.sha256 else {
            console.show(.notice("\(who ?? "the member at " + link.remoteHost) got other bytes than \(offer.name) had when you offered it: "
                                 + "it changed since; /send it again"))
            return
        }
        console.showFile(.sent(name: offer.name, id: entry?.id, to: who, address: link.remoteHost))
    }

    /// An offered file opened to serve it, or why not: it cannot be opened now, or it can no longer
    /// be served as offered (the user is told that one). Not blocking: a path that became a FIFO since the offer must not hang this
    /// thread. A file that grew since its offer (a log still being written) still holds the
    /// offered bytes first: they are served, and only they; the fetcher's hash check says whether
    /// they are still the same. One that shrank cannot be.
    private func openOffered(_ path: String, _ offer: FileOffer, askedBy asker: String) -> Result<OfferedBytes, Refusal> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            // Said here too: only this user can put it back (a file moved or deleted after its
            // offer), and the member who asked sees only that it cannot be had.
            let code = errno
            let why = code == ENOENT ? "it is not at \(path) any more" : String(cString: strerror(code))
            if firstTimeCannotServe(offer) {
                console.show(.notice("\(asker) asked for \(offer.name), which cannot be read now (\(why)); put it back, or /send it again"))
            }
            return .failure(Refusal(message: code == ENOENT ? "the file is gone from the sender's disk" : "the file cannot be read now"))
        }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG, Int(status.st_size) >= offer.size else {
            close(fd)
            let now = status.st_mode & S_IFMT == S_IFREG ? "is shorter than when you offered it" : "is no longer a regular file"
            if firstTimeCannotServe(offer) {
                console.show(.notice("\(offer.name) \(now), so it cannot be sent; /send it again"))
            }
            return .failure(Refusal(message: "the file changed since it was offered"))
        }
        return .success(.file(OpenFile(fd)))
    }

    /// Whether this user is yet to hear that `offer` cannot be served as offered: told once an
    /// offer, however often members ask (Docs/THREAT-MODEL.md, "Flooding the screen").
    private func firstTimeCannotServe(_ offer: FileOffer) -> Bool {
        state.withLock { $0.toldCannotServe.insert(offer.file).inserted }
    }

    /// Why a fetch is refused, as the fetcher is told.
    struct Refusal: Error {
        let message: String
    }
}

/// What a fetch reads from: an offered file, or a folder's archive as it is made.
enum OfferedBytes {
    case file(OpenFile)
    case folder(FolderSource.Reader)

    /// Fills `buffer` from `position` (before the end) on; how many bytes, at least one. Bytes
    /// that are not there any more (a file shorter than offered) throw `.changed`.
    func read(into buffer: UnsafeMutableRawBufferPointer, at position: Int) throws(FolderArchive.Failure) -> Int {
        switch self {
        case .folder(let reader): return try reader.read(into: buffer, at: position)
        case .file(let file):
            while true {
                let count = pread(file.fd, buffer.baseAddress, buffer.count, off_t(position))
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { throw .io("cannot read it", errno) }
                guard count > 0 else { throw .changed("it is shorter now") }
                return count
            }
        }
    }
}

/// A descriptor closed with its last reference.
final class OpenFile {
    let fd: Int32
    init(_ fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}
