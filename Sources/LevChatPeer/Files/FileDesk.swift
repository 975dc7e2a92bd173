#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LevChatCore
import LevChatTransport
import Logging
import NIOCore
import Synchronization

/// Files, peer to peer (Docs/PROTOCOL.md, "Files"): `/send` hashes a file and offers it to the
/// room as a signed `offer` record; `/get` opens a link of its own to the sender (the room's
/// handshake, never through the host), asks for the file from the length of its `.part`, writes
/// the bytes there and renames it only when the whole file's SHA-256 matches the signed offer.
/// The sender's listener hands a link whose first message is a `fetch` to `serve`.
final class FileDesk: Sendable {
    /// The bytes of one `data` record: a frame holds 64 KiB, less the record's seal and type.
    static let chunkBytes = 60 * 1024
    /// Links this peer serves at once; more are refused as busy (the fetcher says so).
    static let servingAtOnce = 8
    /// Transfers this peer fetches at once; a `/get` beyond that waits its turn.
    static let fetchingAtOnce = 4

    /// A transfer link that moves no byte for this long is closed (a peer gone without a word,
    /// or one that stopped reading): three times a room link's dead time.
    private var stallTimeout: Duration { settings.timings.deadAfter * 3 }

    /// Closes a link that makes no progress for `timeout`; `moved` re-arms it, at most once a
    /// second (a timer per 60 KiB record would cost more than the record).
    private struct StallWatch {
        let link: SecureLink
        let timeout: Duration
        var deadline: Deadline
        var armed = ContinuousClock.now
        init(_ link: SecureLink, timeout: Duration) {
            self.link = link
            self.timeout = timeout
            deadline = link.closeAfter(timeout)
        }
        mutating func moved() {
            let now = ContinuousClock.now
            guard now - armed >= .seconds(1) else { return }
            deadline.cancel()
            deadline = link.closeAfter(timeout)
            armed = now
        }
        var fired: Bool { deadline.fired }
        func stop() { deadline.cancel() }
    }

    private struct Shared: Sendable {
        let path: String
        let offer: FileOffer
    }

    private struct Fetching {
        let task: Task<Void, Never>
        var channel: (any Channel)?
        let part: String
    }

    private struct State {
        var shared: [String: Shared] = [:]
        var fetching: [Int: Fetching] = [:]
        var waiting: [Waiting] = []
        var serving: [UInt64: (file: String, channel: any Channel)] = [:]
        var nextServing: UInt64 = 0
        var cancelledServing: Set<UInt64> = []
        /// Descriptors of the (unlinked) archives of offered folders, closed when the peer ends.
        var archives: [Int32] = []
    }

    private let state = Mutex(State())
    private let console: Console
    private let keyring: RoomKeyring
    private let settings: PeerSettings
    /// Signs this peer's fetches (`FetchProof`): an offer to one member is served to its key only.
    private let identity: PeerIdentity
    private var me: NodeID { identity.node }
    private let logger: Logger

    init(console: Console, keyring: RoomKeyring, settings: PeerSettings, identity: PeerIdentity, logger: Logger) {
        self.console = console
        self.keyring = keyring
        self.settings = settings
        self.identity = identity
        self.logger = logger
    }

    // MARK: Commands

    /// Carries out a file command; the offer to post to the room, if it makes one. `members` is
    /// the room as this peer knows it now.
    func perform(_ command: FileCommand, members: [Member]) async -> FileOffer? {
        switch command {
        case .send(let path, nil): return await offer(path)
        case .send(let path, let name?):
            switch FileRecipient(named: name, among: members, me: me) {
            case .member(let node): return await offer(path, to: node)
            case .nobodyCalled(let name):
                console.show(.notice("nobody called \(name) is in the room (a path with spaces needs quotes: /send \"my file.txt\")"))
            case .yourself(let name):
                console.show(.notice("\(name) is you: /send PATH offers a file to the room, /send PATH NAME to one member"))
            }
        case .get(let id, let folder): get(id, into: folder, members: members)
        case .files: list()
        case .cancel(let id): cancel(id)
        }
        return nil
    }

    /// `/send PATH [NAME]`: the offer to post (to `recipient` only, when given), or nil when the
    /// file cannot be offered (the user is told).
    func offer(_ path: String, to recipient: NodeID? = nil) async -> FileOffer? {
        let full = FileDesk.expand(path)
        var status = stat()
        guard stat(full, &status) == 0 else {
            console.show(.notice("cannot send \(path): \(String(cString: strerror(errno)))"))
            return nil
        }
        if status.st_mode & S_IFMT == S_IFDIR { return await offerFolder(path, full, to: recipient) }
        guard status.st_mode & S_IFMT == S_IFREG else {
            console.show(.notice("cannot send \(path): not a regular file"))
            return nil
        }
        let name = (full as NSString).lastPathComponent
        guard name.utf8.count <= FileOffer.maximumNameBytes else {
            console.show(.notice("cannot send \(path): its name is longer than \(FileOffer.maximumNameBytes) bytes"))
            return nil
        }
        // Hashing reads the whole file: on a thread of its own, not the concurrency pool's.
        guard let (size, sha256) = await FileDesk.hash(full) else {
            console.show(.notice("cannot send \(path): could not read it"))
            return nil
        }
        let offer = FileOffer(file: FileOffer.randomToken(), name: name, size: size, sha256: sha256, to: recipient)
        state.withLock { $0.shared[offer.file] = Shared(path: full, offer: offer) }
        return offer
    }

    /// A folder: packed into one archive (kept until this peer ends, so that fetches and resumes
    /// read the same bytes the offer's hash covers). The archive has no name: it is unlinked the
    /// moment it is made and reached through its open descriptor (`/proc/self/fd/N`), so however
    /// the peer ends, even by SIGKILL, the kernel frees it and nothing is left in the temporary
    /// directory.
    private func offerFolder(_ path: String, _ full: String, to recipient: NodeID?) async -> FileOffer? {
        let trimmed = full.hasSuffix("/") && full.count > 1 ? String(full.dropLast()) : full
        let name = (trimmed as NSString).lastPathComponent
        guard !name.isEmpty, name != "/", name.utf8.count <= FileOffer.maximumNameBytes else {
            console.show(.notice("cannot send \(path): give the folder by its name, not as /"))
            return nil
        }
        let named = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-folder-\(FileOffer.randomToken()).tar").path
        let out = open(named, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard out >= 0 else {
            console.show(.notice("cannot send \(path): cannot make its archive in \(FileManager.default.temporaryDirectory.path): \(String(cString: strerror(errno)))"))
            return nil
        }
        unlink(named)
        let archive = "/proc/self/fd/\(out)"
        let packed: Result<Int, FolderArchive.Failure> = await FileDesk.offThread {
            do throws(FolderArchive.Failure) { return .success(try FolderArchive.pack(trimmed, into: out)) } catch { return .failure(error) }
        }
        let skipped: Int
        switch packed {
        case .success(let count): skipped = count
        case .failure(let why):
            close(out)
            console.show(.notice("cannot send \(path): \(why)"))
            return nil
        }
        state.withLock { $0.archives.append(out) }
        if skipped > 0 { console.show(.notice("\(skipped) entr\(skipped == 1 ? "y" : "ies") of \(name) left out: only folders and regular files are sent (not links or devices)")) }
        guard let (size, sha256) = await FileDesk.hash(archive) else {
            console.show(.notice("cannot send \(path): could not read its archive"))
            return nil
        }
        let offer = FileOffer(file: FileOffer.randomToken(), name: name, size: size, sha256: sha256, folder: true, to: recipient)
        state.withLock { $0.shared[offer.file] = Shared(path: archive, offer: offer) }
        return offer
    }

    /// Closes the archives of folders this peer offered (its run is ending): the kernel frees them.
    func removeArchives() {
        for archive in state.withLock({ state in defer { state.archives = [] }; return state.archives }) { close(archive) }
    }

    func list() {
        console.showFile(.list(console.openOffers()))
    }

    /// `/get ID [DIR]`: starts the transfer and returns; what happens is shown as it happens.
    /// `members` is the room as this peer knows it now (the sender's endpoints are in it).
    func get(_ id: Int, into directory: String?, members: [Member]) {
        guard let entry = console.fileEntry(id) else {
            console.show(.notice("there is no offer \(id); /files lists the open ones"))
            return
        }
        guard entry.open else {
            console.show(.notice("offer \(id) (\(entry.offer.name)) has ended: its sender left"))
            return
        }
        guard entry.sender != me else {
            console.show(.notice("offer \(id) is your own file"))
            return
        }
        let folder: String
        do { folder = try FileDesk.folder(directory, default: settings.downloads) } catch {
            console.show(.notice("cannot get \(entry.offer.name): \(error.message)"))
            return
        }
        let part = folder + "/" + SafeFileName.make(entry.offer.name) + ".part"
        let fetch = Waiting(entry: entry, sender: members.first { $0.node == entry.sender }, folder: folder, part: part)
        let answer: String? = state.withLock { state in
            if state.fetching[id] != nil { return "offer \(id) is already on its way" }
            if state.waiting.contains(where: { $0.entry.id == id }) { return "offer \(id) is already waiting its turn" }
            if state.fetching.values.contains(where: { $0.part == part }) || state.waiting.contains(where: { $0.part == part }) {
                return "another transfer is writing \(part)"
            }
            if state.fetching.count >= FileDesk.fetchingAtOnce {
                state.waiting.append(fetch)
                return "offer \(id) waits its turn: \(FileDesk.fetchingAtOnce) transfers are under way (/cancel \(id) takes it off)"
            }
            start(fetch, in: &state)
            return nil
        }
        if let answer { console.show(.notice(answer)) }
    }

    /// A `/get` waiting for one of the transfers under way to end.
    private struct Waiting: Sendable {
        let entry: FileBoard.Entry
        let sender: Member?
        let folder: String
        let part: String
    }

    /// Starts a fetch; when it ends, the next one waiting starts. Registered before it runs, so
    /// that a quick end (a refusal) finds its entry to remove.
    private func start(_ waiting: Waiting, in state: inout State) {
        let id = waiting.entry.id
        let task = Task { [self] in
            await fetch(waiting.entry, from: waiting.sender, folder: waiting.folder, part: waiting.part)
            self.state.withLock { state in
                state.fetching.removeValue(forKey: id)
                if !state.waiting.isEmpty { start(state.waiting.removeFirst(), in: &state) }
            }
        }
        state.fetching[id] = Fetching(task: task, channel: nil, part: waiting.part)
    }

    /// `/cancel ID`: stops this peer's fetch of offer ID, or its serving of its own offer ID.
    func cancel(_ id: Int) {
        guard let entry = console.fileEntry(id) else {
            console.show(.notice("there is no offer \(id); /files lists the open ones"))
            return
        }
        let wasWaiting = state.withLock { state in
            guard let index = state.waiting.firstIndex(where: { $0.entry.id == id }) else { return false }
            state.waiting.remove(at: index)
            return true
        }
        if wasWaiting {
            console.showFile(.cancelled(id: id, name: entry.offer.name))
            return
        }
        let fetching = state.withLock { $0.fetching[id] }
        if let fetching {
            fetching.task.cancel()
            fetching.channel?.close(promise: nil)
            return
        }
        let links = state.withLock { state in
            let mine = state.serving.filter { $0.value.file == entry.offer.file }
            state.cancelledServing.formUnion(mine.keys)
            return mine.values.map(\.channel)
        }
        guard !links.isEmpty else {
            console.show(.notice("offer \(id) (\(entry.offer.name)) has no transfer under way here"))
            return
        }
        for channel in links { channel.close(promise: nil) }
        console.showFile(.cancelled(id: id, name: entry.offer.name))
    }

    // MARK: Fetching

    private enum FetchEnd {
        case complete
        case linkEnded(at: Int)
        case stalled(at: Int)
        case refused(String)
        case moreThanOffered
        case malformed(String)
        case disk(Int32, at: Int)
        case cancelled(at: Int)
    }

    private func fetch(_ entry: FileBoard.Entry, from sender: Member?, folder: String, part: String) async {
        let offer = entry.offer
        let fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)  // as the umask allows, like any download
        guard fd >= 0 else {
            console.showFile(.failed(id: entry.id, name: offer.name, reason: "cannot write \(part): \(String(cString: strerror(errno)))",
                                     resumable: false))
            return
        }
        var closed = false
        defer { if !closed { close(fd) } }
        // What is already there: its length is where this fetch starts, and it is hashed first
        // (the final hash covers the whole file). A part longer than the file is not this file's.
        var offset = Int(lseek(fd, 0, SEEK_END))
        if offset > offer.size {
            _ = ftruncate(fd, 0)
            offset = Int(lseek(fd, 0, SEEK_SET))
        }
        // A resumed part can be gigabytes: hashed on a thread of its own, not the pool's.
        let prefix: FileHasher? = await FileDesk.offThread { [offset] in
            var hasher = FileHasher()
            return FileDesk.hashPrefix(fd, length: offset, into: &hasher) ? hasher : nil
        }
        guard let hasher = prefix else {
            console.showFile(.failed(id: entry.id, name: offer.name, reason: "cannot read \(part)", resumable: false))
            return
        }
        guard let sender, !sender.endpoints.isEmpty else {
            console.showFile(.failed(id: entry.id, name: offer.name, reason: "\(entry.from) is not in the room", resumable: offset > 0))
            return
        }
        console.showFile(.started(entry, offset: offset))
        var end: FetchEnd?
        var progress = Progress(entry: entry, json: console.json, statusRow: console.showsStatusRows, start: offset)
        let hashing = HashingThread(continuing: hasher)
        for endpoint in sender.endpoints.prefix(3) {
            if Task.isCancelled { break }
            do throws(ConnectError) {
                end = try await SecureLink.connect(to: endpoint, over: settings.network, keyring: keyring, role: "fetch",
                                                   connectTimeout: settings.connectTimeout, handshakeTimeout: settings.timings.handshakeTimeout,
                                                   connected: { [self] channel in self.state.withLock { $0.fetching[entry.id]?.channel = channel } }) { link in
                    await receive(&link, offer: offer, from: offset, into: fd, hashing: hashing, progress: &progress)
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
            console.showFile(Task.isCancelled ? .cancelled(id: entry.id, name: offer.name)
                                              : .failed(id: entry.id, name: offer.name, reason: "could not reach \(entry.from)", resumable: true))
            return
        }
        switch end {
        case .complete:
            // A gigabyte's fsync can take seconds: on a thread of its own, not the pool's.
            await FileDesk.offThread { fsync(fd); close(fd) }
            closed = true
            guard digest == offer.sha256 else {
                unlink(part)
                console.showFile(.failed(id: entry.id, name: offer.name,
                                         reason: "what arrived does not match the offer's SHA-256; the partial file was deleted", resumable: false))
                return
            }
            let name = SafeFileName.unused(SafeFileName.make(offer.name)) { FileManager.default.fileExists(atPath: folder + "/" + $0) }
            let path = folder + "/" + name
            if offer.isFolder {
                let unpacked: FolderArchive.Failure? = await FileDesk.offThread {
                    do throws(FolderArchive.Failure) { try FolderArchive.unpack(part, into: path); return nil } catch { return error }
                }
                unlink(part)
                if let unpacked {
                    try? FileManager.default.removeItem(atPath: path)
                    console.showFile(.failed(id: entry.id, name: offer.name, reason: "the folder was not unpacked (\(unpacked)); nothing of it was kept",
                                             resumable: false))
                    return
                }
                console.showFile(.received(entry, path: path))
                return
            }
            guard rename(part, path) == 0 else {
                console.showFile(.failed(id: entry.id, name: offer.name, reason: "cannot rename \(part): \(String(cString: strerror(errno)))",
                                         resumable: false))
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
        case .refused(let why):
            console.showFile(.failed(id: entry.id, name: offer.name, reason: "\(entry.from)'s peer refused: \(why)", resumable: true))
        case .moreThanOffered:
            unlink(part)
            console.showFile(.failed(id: entry.id, name: offer.name,
                                     reason: "the sender sent more than the \(offer.size) bytes offered; cut off, the partial file was deleted",
                                     resumable: false))
        case .malformed(let why):
            console.showFile(.failed(id: entry.id, name: offer.name, reason: "the sender broke the protocol (\(why)); cut off", resumable: true))
        case .disk(let code, let at):
            let why = code == ENOSPC ? "the disk is full" : String(cString: strerror(code))
            console.showFile(.failed(id: entry.id, name: offer.name,
                                     reason: "\(why) at \(ByteCount.describe(at)); \(part) is kept", resumable: true))
        case .cancelled:
            console.showFile(.cancelled(id: entry.id, name: offer.name))
        }
    }

    private func receive(_ link: inout SecureLink, offer: FileOffer, from offset: Int, into fd: Int32, hashing: HashingThread,
                         progress: inout Progress) async -> FetchEnd {
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
                return .refused(info.message.description)
            case nil:
                return .linkEnded(at: offset)
            case let other?:
                return .malformed("\(other.typeName) in place of file")
            }
        } catch {
            return .linkEnded(at: offset)
        }
        var bytes = offset
        var writeback = Writeback(fd: fd, from: offset)
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
            case .message(let message): return .malformed("\(message.typeName) in place of data")
            }
            guard chunk.count <= offer.size - bytes else { return .moreThanOffered }
            // Written from where it was opened (no copy of 60 KiB per record), then hashed on the
            // hashing thread while the next records are opened and written.
            if let failed = chunk.withUnsafeBytes({ FileDesk.write(fd, $0) }) { return .disk(failed, at: bytes) }
            await hashing.feed(chunk)
            bytes += chunk.count
            writeback.wrote(upTo: bytes)
            if let event = progress.advanced(to: bytes) { console.showFile(event) }
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
    private struct Progress {
        let entry: FileBoard.Entry
        let json: Bool
        let statusRow: Bool
        let started = ContinuousClock.now
        let start: Int
        var lastShown = ContinuousClock.now
        var lastTenth: Int

        init(entry: FileBoard.Entry, json: Bool, statusRow: Bool, start: Int) {
            self.entry = entry
            self.json = json
            self.statusRow = statusRow
            self.start = start
            lastTenth = entry.offer.size == 0 ? 10 : start * 10 / entry.offer.size
        }

        mutating func advanced(to bytes: Int) -> FileEvent? {
            let now = ContinuousClock.now
            let size = max(entry.offer.size, 1)
            let due: Bool
            if statusRow {
                due = now - lastShown >= .milliseconds(100)
            } else if json {
                due = now - lastShown >= .seconds(1)
            } else {
                let tenth = bytes * 10 / size
                due = tenth > lastTenth && tenth < 10
                if due { lastTenth = tenth }
            }
            guard due else { return nil }
            lastShown = now
            let elapsed = Double((now - started).components.attoseconds) / 1e18 + Double((now - started).components.seconds)
            return .progress(entry, bytes: bytes, rate: elapsed > 0 ? Double(bytes - start) / elapsed : 0)
        }
    }

    // MARK: Serving

    /// A link whose first message was `fetch`: the file from the asked offset, then the link
    /// waits for the fetcher to close it (it does once it has every byte).
    func serve(_ link: inout SecureLink, _ fetch: Fetch) async {
        guard let shared = state.withLock({ $0.shared[fetch.file] }) else {
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
        let fd = open(shared.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            try? await link.send(.error(ErrorInfo(code: .noFile, message: "the file cannot be read now")))
            return
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, Int(status.st_size) == offer.size else {
            try? await link.send(.error(ErrorInfo(code: .noFile, message: "the file changed since it was offered")))
            return
        }
        guard fetch.offset <= offer.size else {
            try? await link.send(.error(ErrorInfo(code: .protocolError, message: "an offset past the end of the file")))
            return
        }
        // AES-256-GCM when the fetcher offers it and this machine has it in hardware too.
        let cipher = fetch.cipher.flatMap(LinkCipher.init(rawValue:)).flatMap { $0 == settings.fileCipher ? $0 : nil }
        do {
            try await link.send(.file(FileStart(size: offer.size, offset: fetch.offset, cipher: cipher)))
            if let cipher { link.sealer.switchTo(cipher) }
            logger.info("serving \(offer.name) to \(link.remoteHost) from byte \(fetch.offset) with \(link.sealer.cipher.rawValue)")
            var position = fetch.offset
            // The `data` type, then the bytes read straight after it: the record's plaintext.
            var buffer = [UInt8](repeating: 0, count: 1 + FileDesk.chunkBytes)
            buffer[0] = WireMessage.dataType
            let started = ContinuousClock.now
            var watch = StallWatch(link, timeout: stallTimeout)
            defer { watch.stop() }
            while position < offer.size {
                watch.moved()
                let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + 1, $0.count - 1, off_t(position)) }
                guard count > 0 else { return }
                try await link.send(plaintext: buffer[..<(1 + count)])
                position += count
                await Task.yield()  // as the fetcher does: chat first
                if let rate = settings.fileRate {
                    try? await Task.sleep(until: started + .seconds(Double(position - fetch.offset) / Double(rate)))
                }
            }
        } catch {
            logger.info("serving \(offer.name) to \(link.remoteHost) ended: \(error)")
            return
        }
        // Every byte is written; the fetcher answers `done` with their hash once it has them all.
        // Only that is a file delivered: a link that merely ends may have died with bytes unread.
        let deadline = link.closeAfter(stallTimeout)
        defer { deadline.cancel() }
        let answer: WireMessage?
        do { answer = try await link.receive() } catch { answer = nil }
        guard !state.withLock({ $0.cancelledServing.contains(ticket) }) else { return }
        let who = fetcher.flatMap(console.memberName)
        guard case .done(let done)? = answer else {
            logger.info("serving \(offer.name) to \(link.remoteHost): the link ended before the fetcher said it had every byte")
            return
        }
        guard done.sha256 == offer.sha256 else {
            console.show(.notice("\(who ?? "the member at " + link.remoteHost) got other bytes than \(offer.name) had when you offered it: "
                                 + "it changed since; /send it again"))
            return
        }
        console.showFile(.sent(name: offer.name, id: console.ownOffer(file: offer.file)?.id, to: who, address: link.remoteHost))
    }

    // MARK: Disk

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

    enum FolderError: Error {
        case notAFolder(String)
        case cannotMake(String, String)
        var message: String {
            switch self {
            case .notAFolder(let path): "\(path) is not a folder"
            case .cannotMake(let path, let why): "cannot make \(path): \(why)"
            }
        }
    }

    /// Where a fetch goes: the folder asked for (it must exist), else `--downloads`, else the XDG
    /// download directory, else ~/Downloads (made when missing).
    static func folder(_ asked: String?, default configured: String?) throws(FolderError) -> String {
        if let asked {
            let path = expand(asked)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else { throw .notAFolder(asked) }
            return path
        }
        let path = configured.map(expand) ?? xdgDownloads() ?? (home() + "/Downloads")
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            guard isFolder.boolValue else { throw .notAFolder(path) }
            return path
        }
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw .cannotMake(path, "\(error.localizedDescription)")
        }
        return path
    }

    /// `XDG_DOWNLOAD_DIR` from the environment or `user-dirs.dirs` (as xdg-user-dirs writes it).
    static func xdgDownloads() -> String? {
        if let value = ProcessInfo.processInfo.environment["XDG_DOWNLOAD_DIR"], !value.isEmpty { return expand(value) }
        let config = ProcessInfo.processInfo.environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home() + "/.config"
        guard let text = try? String(contentsOfFile: config + "/user-dirs.dirs", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("XDG_DOWNLOAD_DIR=") {
            let value = line.dropFirst("XDG_DOWNLOAD_DIR=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            return value.replacingOccurrences(of: "$HOME", with: home())
        }
        return nil
    }

    static func home() -> String { ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory() }

    /// `~` and `~/…` as a shell expands them; a relative path stays relative to the working directory.
    static func expand(_ path: String) -> String {
        if path == "~" { return home() }
        if path.hasPrefix("~/") { return home() + path.dropFirst() }
        return path
    }

    /// Runs blocking file work on a thread of its own, not on the concurrency pool's two.
    static func offThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: body()) }.start()
        }
    }

    /// The size and SHA-256 of a file, read on a thread of its own.
    static func hash(_ path: String) async -> (Int, String)? {
        await withCheckedContinuation { continuation in
            Thread {
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { return continuation.resume(returning: nil) }
                defer { close(fd) }
                var hasher = FileHasher()
                var size = 0
                var buffer = [UInt8](repeating: 0, count: 1 << 20)
                while true {
                    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if count < 0 && errno == EINTR { continue }
                    guard count >= 0 else { return continuation.resume(returning: nil) }
                    if count == 0 { break }
                    buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                    size += count
                }
                continuation.resume(returning: (size, hasher.hex()))
            }.start()
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
