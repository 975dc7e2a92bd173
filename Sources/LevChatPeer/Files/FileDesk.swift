#if canImport(Glibc)
import Glibc
#endif
import LevChatCore
import LevChatTransport
import Logging
import NIOCore
import Synchronization

/// Files, peer to peer (Docs/PROTOCOL.md, "Files"): `/send` hashes a file and offers it to the
/// room as a signed `offer` record; `/get` opens a link of its own to the sender (the room's
/// handshake, never through the host), asks for the file from what its part holds, writes the
/// bytes there and moves it into place only when the whole file's SHA-256 matches the signed
/// offer (a folder's archive is unpacked as it arrives).
/// The sender's listener hands a link whose first message is a `fetch` to `serve`.
final class FileDesk: Sendable {
    /// The bytes of one `data` record: a frame holds 64 KiB, less the record's seal and type.
    static let chunkBytes = 60 * 1024
    /// Links this peer serves at once; more are refused as busy (the fetcher says so).
    static let servingAtOnce = 8
    /// How long a `/cancel` of a transfer this peer serves waits for the serving loop to tell the
    /// fetcher before the link is closed anyway (`cancel`).
    static let cancelGrace = TimeAmount.seconds(2)
    /// Transfers this peer fetches at once; a `/get` beyond that waits its turn.
    static let fetchingAtOnce = 4
    /// Files from this size say, before they are hashed to be offered, that this takes a while.
    static let announcedHashBytes = 256 << 20

    /// A transfer link that moves no byte for this long is closed (a peer gone without a word,
    /// or one that stopped reading): three times a room link's dead time.
    var stallTimeout: Duration { settings.timings.deadAfter * 3 }

    /// Closes a link that makes no progress for `timeout`; `moved` re-arms it, at most once a
    /// second (a timer per 60 KiB record would cost more than the record).
    struct StallWatch {
        let link: SecureLink
        let timeout: Duration
        var deadline: Deadline
        var armed: Duration
        init(_ link: SecureLink, timeout: Duration) {
            self.link = link
            self.timeout = timeout
            deadline = link.closeAfter(timeout)
            armed = link.clock.now().monotonic
        }
        mutating func moved() {
            let now = link.clock.now().monotonic
            guard now - armed >= .seconds(1) else { return }
            deadline.cancel()
            deadline = link.closeAfter(timeout)
            armed = now
        }
        var fired: Bool { deadline.fired }
        func stop() { deadline.cancel() }
    }

    struct Shared: Sendable {
        /// What is served: a file's bytes, or a folder's archive made as it is read.
        enum Source: Sendable {
            case file(String)
            case folder(FolderSource)
            /// A folder an earlier run offered: listed again when a fetch comes.
            case keptFolder(String)
        }
        let source: Source
        let offer: FileOffer
    }

    struct Fetching {
        let task: Task<Void, Never>
        var channel: (any Channel)?
        let part: String
    }

    struct State {
        var shared: [String: Shared] = [:]
        var fetching: [Int: Fetching] = [:]
        var waiting: [Waiting] = []
        var serving: [UInt64: (file: String, channel: any Channel)] = [:]
        var nextServing: UInt64 = 0
        var cancelledServing: Set<UInt64> = []
        /// This peer is leaving the room: the links it serves end with it, which `leaving()` says
        /// once for all of them.
        var leaving = false
        /// Offers that could not be served as offered (the file gone, shorter, or the folder
        /// changed), which this user was told: once each, however often members ask.
        var toldCannotServe: Set<String> = []
        /// `untilFetchesEnd` callers, resumed once no fetch is under way or waiting its turn.
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        /// `stopWaiting` was called: no wait for fetches from then on (a Ctrl-C that came just
        /// before a wait began still ends it).
        var waitsStopped = false
        /// `/send`s typed (`sendTicket`), and the last of them that `/cancel` alone stopped.
        var sendsTicketed = 0
        var sendsCancelledThrough = 0
        /// Files and folders being read (hashed) for their offers, as `/files` names them, in
        /// the order their reading began.
        var reading: [Int: String] = [:]
        var nextReading = 0

        /// The waiters to resume now: all of them once the fetches are over (or `always`).
        mutating func idleWaitersToResume(always: Bool = false) -> [CheckedContinuation<Void, Never>] {
            guard always || (fetching.isEmpty && waiting.isEmpty) else { return [] }
            defer { idleWaiters = [] }
            return idleWaiters
        }
    }

    let state = Mutex(State())
    let console: Console
    let keyring: RoomKeyring
    let settings: PeerSettings
    /// Signs this peer's fetches (`FetchProof`): an offer to one member is served to its key only.
    let identity: PeerIdentity
    var me: NodeID { identity.node }
    let logger: Logger

    init(console: Console, keyring: RoomKeyring, settings: PeerSettings, identity: PeerIdentity, logger: Logger) {
        self.console = console
        self.keyring = keyring
        self.settings = settings
        self.identity = identity
        self.logger = logger
    }

    // MARK: Commands

    /// Carries out a file command; each offer it makes goes to `post` as soon as it is ready
    /// (a pattern's matches one by one, in order). `members` is the room as this peer knows it now.
    /// A `/send` carries the `ticket` it was given when it was typed (`sendTicket`), so that
    /// `/cancel` alone stops it wherever it is: waiting its turn, or its file being read.
    func perform(_ command: FileCommand, members: [Member], ticket: Int? = nil, post: @Sendable (FileOffer) async -> Void = { _ in }) async {
        switch command {
        case .send(let path, let name):
            let stopped: @Sendable () -> Bool = { [self] in ticket.map { self.isSendCancelled($0) } ?? false }
            func sayStopped(offered: Int, of count: Int) {
                console.show(.notice(offered == 0 ? "/send \(path) stopped: it is not offered"
                                                  : "/send \(path) stopped: \(offered) of the \(count) it matches were offered, the rest are not"))
            }
            guard !stopped() else { return sayStopped(offered: 0, of: 1) }
            var recipient: NodeID?
            if let name {
                switch FileRecipient(named: name, among: members, me: me) {
                case .member(let node): recipient = node
                case .nobodyCalled(let name):
                    console.show(.notice("nobody called \(name) is in the room (a path with spaces needs quotes: /send \"my file.txt\")"))
                    return
                case .yourself(let name):
                    console.show(.notice("\(name) is you: /send PATH offers a file to the room, /send PATH NAME to one member"))
                    return
                }
            }
            let paths = await sendable(path) ?? []
            var offered = 0
            for item in paths {
                if stopped() { break }
                if let offer = await offer(item, to: recipient, unless: stopped) {
                    await post(offer)
                    offered += 1
                }
            }
            if stopped() && offered < paths.count { sayStopped(offered: offered, of: paths.count) }
        case .get(let id, let folder): get(id, into: folder, members: members)
        case .files: list()
        case .cancel(let id?): cancel(id)
        case .cancel(nil): break  // the /sends' (`RoomPeer.handle`), which knows whether any is under way
        }
    }

    /// A ticket for a `/send` as it is typed, in order.
    func sendTicket() -> Int {
        state.withLock { state in
            state.sendsTicketed += 1
            return state.sendsTicketed
        }
    }

    /// `/cancel` alone: every `/send` typed so far that is not offered yet stops (a file being
    /// read within a MiB), and says so.
    func cancelSends() {
        state.withLock { $0.sendsCancelledThrough = $0.sendsTicketed }
    }

    func isSendCancelled(_ ticket: Int) -> Bool {
        state.withLock { ticket <= $0.sendsCancelledThrough }
    }

    /// `/cancel` alone with no `/send` being read: the one transfer under way, when there is just
    /// one (a download, running or waiting its turn, or this peer serving one of its offers), as
    /// `/cancel ID` would; else what to type.
    func cancelTheOnlyTransfer() {
        let (fetched, served) = state.withLock { state in
            (Set(state.fetching.keys).union(state.waiting.map(\.entry.id)),
             // A link whose fetcher went is not a transfer any more, though its loop may not
             // have ended yet.
             Set(state.serving.filter { !state.cancelledServing.contains($0.key) && $0.value.channel.isActive }.values.map(\.file)))
        }
        let ids = fetched.union(served.compactMap { console.ownOffer(file: $0)?.id }).sorted()
        switch ids.count {
        case 0: console.show(.notice("nothing to cancel: no /send is being read and no transfer is under way"))
        case 1: cancel(ids[0])
        default:
            console.show(.notice("\(ids.count) transfers are under way (offers \(ids.map(String.init).joined(separator: ", "))): /cancel ID stops one"))
        }
    }

    /// The paths a `/send` names: the path itself, or what a pattern in it matches, as a shell
    /// would expand it (`/send ~/notes/*.txt`); nil, the user told, when a pattern matches nothing
    /// or more than `mostMatches`. A path that exists is taken as it is, pattern characters and all.
    func sendable(_ path: String) async -> [String]? {
        // A folder's listing can take a while (a network file system): off the concurrency pool.
        switch await FileDesk.offThread(name: "levchat-glob", { FileDesk.matches(of: path) }) {
        case .literal: return [path]
        case .matches(let paths) where paths.count <= FileDesk.mostMatches: return paths
        case .matches(let paths):
            console.show(.notice("cannot send \(path): it matches \(paths.count) files and folders, and at most \(FileDesk.mostMatches) are offered at once (send their folder instead)"))
        case .none:
            console.show(.notice("cannot send \(path): no file or folder matches it"))
        }
        return nil
    }

    /// `/send PATH [NAME]`: the offer to post (to `recipient` only, when given), or nil when the
    /// file cannot be offered (the user is told).
    /// `unless`: `/cancel` stopped this `/send` (the file is read no further, nothing is offered).
    func offer(_ path: String, to recipient: NodeID? = nil, unless stopped: @escaping @Sendable () -> Bool = { false }) async -> FileOffer? {
        let full = FileDesk.expand(path)
        var status = stat()
        guard stat(full, &status) == 0 else {
            console.show(.notice("cannot send \(path): \(String(cString: strerror(errno)))"))
            return nil
        }
        if status.st_mode & S_IFMT == S_IFDIR { return await offerFolder(path, full, to: recipient, unless: stopped) }
        guard status.st_mode & S_IFMT == S_IFREG else {
            console.show(.notice("cannot send \(path): not a regular file"))
            return nil
        }
        let name = FileDesk.lastComponent(of: full)
        if FileDesk.isInPrivateFolder(full) {
            console.show(.notice(FileDesk.privateRefusal(path)))
            return nil
        }
        guard name.utf8.count <= FileOffer.maximumNameBytes else {
            console.show(.notice("cannot send \(path): its name is longer than \(FileOffer.maximumNameBytes) bytes"))
            return nil
        }
        // Hashing reads the whole file (about a second per 1-2 GB here): a large one says so
        // first, so that the wait before its offer is not taken for nothing happening.
        let what = "\(name) (\(ByteCount.describe(Int(status.st_size))))"
        if Int(status.st_size) >= FileDesk.announcedHashBytes {
            console.show(.notice("reading \(what) to hash it before it is offered… (/cancel stops it)"))
        }
        // On a thread of its own, not the concurrency pool's.
        let read = reading(what)
        let hashed = await FileDesk.hash(full, unless: stopped)
        read()
        guard let hashed else {
            if !stopped() { console.show(.notice("cannot send \(path): could not read it")) }
            return nil
        }
        guard !stopped() else { return nil }
        guard hashed.size <= hashed.sizeOnDisk else {
            console.show(.notice("cannot send \(path): reading it gives \(ByteCount.describe(hashed.size)) where its size says "
                                 + "\(ByteCount.describe(hashed.sizeOnDisk)), as for the files of /proc and /sys; copy it to a file and send that"))
            return nil
        }
        let offer = FileOffer(file: FileOffer.randomToken(), name: name, size: hashed.size, sha256: hashed.sha256, to: recipient)
        state.withLock { $0.shared[offer.file] = Shared(source: .file(full), offer: offer) }
        // Kept beyond this run: a sender killed mid-transfer serves it again when it is back.
        if let room = keyring.grant?.roomID { settings.offeredFiles?.remember(offer, at: FileDesk.absolute(full), room: room) }
        return offer
    }

    /// A folder: one ustar archive, made as it is read (`FolderSource`), never written anywhere.
    /// Its entries are listed now, and the archive read once for its hash; a large one says so
    /// first. Kept for later runs like a file.
    private func offerFolder(_ path: String, _ full: String, to recipient: NodeID?, unless stopped: @escaping @Sendable () -> Bool) async -> FileOffer? {
        let trimmed = full.hasSuffix("/") && full.count > 1 ? String(full.dropLast()) : full
        let name = FileDesk.folderName(trimmed)
        guard !name.isEmpty, name != "/", name.utf8.count <= FileOffer.maximumNameBytes else {
            console.show(.notice("cannot send \(path): give the folder by its name, not as /"))
            return nil
        }
        if let privateFolder = FolderIdentity.privateFolder, FolderIdentity(path: trimmed) == privateFolder {
            console.show(.notice(FileDesk.privateRefusal(path)))
            return nil
        }
        let listed: Result<FolderSource, FolderArchive.Failure> = await FileDesk.offThread {
            do throws(FolderArchive.Failure) { return .success(try FolderSource(trimmed)) } catch { return .failure(error) }
        }
        let source: FolderSource
        switch listed {
        case .success(let folder): source = folder
        case .failure(let why):
            console.show(.notice("cannot send \(path): \(why)"))
            return nil
        }
        if let leftOut = FileDesk.leftOut(source, name: name) { console.show(.notice(leftOut)) }
        let what = "\(name)/ (\(source.files) file\(source.files == 1 ? "" : "s"), \(ByteCount.describe(source.size)))"
        if source.size >= FileDesk.announcedHashBytes {
            console.show(.notice("reading \(what) to hash it before it is offered… (/cancel stops it)"))
        }
        let read = reading(what)
        let hashed: Result<String?, FolderArchive.Failure> = await FileDesk.offThread {
            do throws(FolderArchive.Failure) { return .success(try source.sha256(unless: stopped)) } catch { return .failure(error) }
        }
        read()
        let sha256: String
        switch hashed {
        case .success(nil): return nil
        case .success(let hash?):
            guard !stopped() else { return nil }
            sha256 = hash
        case .failure(let why):
            console.show(.notice("cannot send \(path): \(why)"))
            return nil
        }
        let offer = FileOffer(file: FileOffer.randomToken(), name: name, size: source.size, sha256: sha256, folder: true, to: recipient)
        state.withLock { $0.shared[offer.file] = Shared(source: .folder(source), offer: offer) }
        if let room = keyring.grant?.roomID { settings.offeredFiles?.remember(offer, at: FileDesk.absolute(trimmed), room: room) }
        return offer
    }

    /// Whether the file `path` (links followed) is in this user's levchat state folder.
    static func isInPrivateFolder(_ path: String) -> Bool {
        guard let privateFolder = FolderIdentity.privateFolder, let resolved = realpath(path, nil) else { return false }
        defer { free(resolved) }
        let file = String(cString: resolved)
        guard let slash = file.lastIndex(of: "/"), slash != file.startIndex else { return false }
        return FolderIdentity(path: String(file[..<slash])) == privateFolder
    }

    /// Why a file or folder of this user's levchat state is not offered.
    static func privateRefusal(_ path: String) -> String {
        "cannot send \(path): it is levchat's own state (your private key, known_peers, offers), which is never sent"
    }

    /// What a folder's offer leaves out, in one sentence; nil when nothing.
    static func leftOut(_ source: FolderSource, name: String) -> String? {
        var parts: [String] = []
        if source.hidden > 0 {
            parts.append("\(source.hidden) hidden entr\(source.hidden == 1 ? "y" : "ies") (a name starting with a dot, as settings and keys have)")
        }
        if source.leftOutPrivate { parts.append("your levchat identity's folder") }
        if source.skipped > 0 {
            parts.append("\(source.skipped) entr\(source.skipped == 1 ? "y" : "ies") that \(source.skipped == 1 ? "is" : "are") not a folder or a regular file "
                         + "you can read (links, devices)")
        }
        return parts.isEmpty ? nil : "left out of \(name)/: " + parts.joined(separator: "; ")
    }

    /// How many fetches are under way or waiting their turn.
    var fetchCount: Int { state.withLock { $0.fetching.count + $0.waiting.count } }

    /// Returns once no fetch of this peer is under way or waiting its turn (each has arrived,
    /// failed or been cancelled), or `stopWaiting` or `leaving` is called: input that ends after
    /// `/get` (a script's) leaves with its files, not halfway through them.
    func untilFetchesEnd() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state in
                guard !state.leaving, !state.waitsStopped, !(state.fetching.isEmpty && state.waiting.isEmpty) else { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Ends every `untilFetchesEnd` wait now (Ctrl-C: leave without waiting for downloads).
    func stopWaiting() {
        let waiters = state.withLock { state in
            state.waitsStopped = true
            return state.idleWaitersToResume(always: true)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// This peer is leaving the room: the transfers under way stop with its run. The user hears
    /// where each download stopped (its part stays, and `/get` resumes it) and how many of its own
    /// files were still going out to others.
    func leaving() {
        let (fetching, serving, offered, waiters) = state.withLock { state in
            state.leaving = true
            return (state.fetching.map { ($0.key, $0.value.part) }.sorted { $0.0 < $1.0 }, state.serving.count,
                    state.shared.values.map(\.offer.name).sorted(), state.idleWaitersToResume(always: true))
        }
        for waiter in waiters { waiter.resume() }
        // A script that offers and ends its input learns why nobody could fetch: an offer lasts
        // while its sender is in the room.
        if offered.count == 1, let name = offered.first {
            console.show(.notice("your offer of \(name) ends as you leave: others can fetch it only while you are in the room"))
        } else if offered.count > 1 {
            console.show(.notice("your \(offered.count) offers end as you leave: others can fetch them only while you are in the room"))
        }
        for (id, part) in fetching {
            guard let entry = console.fileEntry(id) else { continue }
            var status = stat()
            let have = stat(part, &status) == 0 ? Int(status.st_size) : 0
            // A folder's part is a folder: what it holds is not its length.
            let at = status.st_mode & S_IFMT == S_IFDIR ? "" : ", at \(ByteCount.describe(have)) of \(ByteCount.describe(entry.offer.size))"
            console.showFile(.failed(id: id, name: entry.offer.name, reason: "stopped when you left the room\(at)", resumable: true))
        }
        if serving > 0 {
            console.show(.notice("\(serving) transfer\(serving == 1 ? "" : "s") of your files to others stopped when you left the room"))
        }
    }

    func list() {
        console.showFile(.list(console.openOffers()))
        for (_, what) in state.withLock({ $0.reading }).sorted(by: { $0.key < $1.key }) {
            console.show(.notice("\(what) is being read to be offered (/cancel stops it)"))
        }
    }

    /// `what` is being read for its offer until the returned `done` is called (`/files` says so).
    func reading(_ what: String) -> @Sendable () -> Void {
        let key = state.withLock { state in
            defer { state.nextReading += 1 }
            state.reading[state.nextReading] = what
            return state.nextReading
        }
        return { [self] in _ = state.withLock { $0.reading.removeValue(forKey: key) } }
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
        // `NAME.part`, unless another transfer writes it or it holds another offer's bytes (two
        // offers of the same name): then `NAME (1).part`, and so on.
        let writing = state.withLock { state in Set(state.fetching.values.map(\.part)).union(state.waiting.map(\.part)) }
        let part = folder + "/" + SafeFileName.unused(SafeFileName.make(entry.offer.name)) { name in
            let path = folder + "/" + name + ".part"
            return writing.contains(path) || !PartMark.mayHold(entry.offer, path)
        } + ".part"
        let fetch = Waiting(entry: entry, sender: members.first { $0.node == entry.sender }, folder: folder, part: part)
        let answer: String? = state.withLock { state in
            if state.fetching[id] != nil { return "offer \(id) is already on its way" }
            if state.waiting.contains(where: { $0.entry.id == id }) { return "offer \(id) is already waiting its turn" }
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
    struct Waiting: Sendable {
        let entry: FileBoard.Entry
        let sender: Member?
        let folder: String
        let part: String
    }

    /// Starts a fetch; when it ends, the next one waiting starts. Registered before it runs, so
    /// that a quick end (a refusal) finds its entry to remove.
    private func start(_ waiting: Waiting, in state: inout State) {
        let id = waiting.entry.id
        let task = Task(executorPreference: TransferThread.shared) { [self] in
            await fetch(waiting.entry, from: waiting.sender, folder: waiting.folder, part: waiting.part)
            let idle = self.state.withLock { state in
                state.fetching.removeValue(forKey: id)
                if !state.waiting.isEmpty { start(state.waiting.removeFirst(), in: &state) }
                return state.idleWaitersToResume()
            }
            for waiter in idle { waiter.resume() }
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
        // Each serving loop tells its fetcher, in place of its next record, and ends; a loop held
        // up by a fetcher that reads nothing has its link closed a moment later all the same.
        for channel in links {
            channel.eventLoop.scheduleTask(in: FileDesk.cancelGrace) { channel.close(promise: nil) }
        }
        console.showFile(.cancelled(id: id, name: entry.offer.name))
    }
}
