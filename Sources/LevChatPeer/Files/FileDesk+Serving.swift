#if canImport(Glibc)
import Glibc
#endif
import Foundation
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
                ?? settings.offeredFiles?.entry(file: fetch.file, room: link.roomID).map({ Shared(path: $0.path, offer: $0.offer) }) else {
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
        // Not blocking: a path that became a FIFO since the offer must not hang this thread.
        let fd = open(shared.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            try? await link.send(.error(ErrorInfo(code: .noFile, message: "the file cannot be read now")))
            return
        }
        defer { close(fd) }
        // A file that grew since its offer (a log still being written) still holds the offered
        // bytes first: they are served, and only they; the fetcher's hash check says whether they
        // are still the same. One that shrank cannot be.
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG, Int(status.st_size) >= offer.size else {
            let now = status.st_mode & S_IFMT == S_IFREG ? "is shorter than when you offered it" : "is no longer a regular file"
            console.show(.notice("\(offer.name) \(now), so it cannot be sent; /send it again"))
            try? await link.send(.error(ErrorInfo(code: .noFile, message: "the file changed since it was offered")))
            return
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
            let cancelled = state.withLock { $0.cancelledServing.contains(ticket) }
            console.showFile(.sendEnded(entry, to: to, row: row, bytes: position, stopped: cancelled ? nil : stopped))
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
                let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + 1, min($0.count - 1, offer.size - position), off_t(position)) }
                guard count > 0 else {
                    watch.stop()
                    ended("the file could not be read there (\(count < 0 ? String(cString: strerror(errno)) : "it is shorter now"))")
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
}
