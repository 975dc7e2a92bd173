import Dispatch
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LevChatCore
import Synchronization

/// Where a user's identity lives across runs (Docs/THREAT-MODEL.md, "Identity across runs"):
/// `$XDG_STATE_HOME/levchat/identity` (else `~/.local/state/levchat/identity`), the Ed25519 key's
/// 32-byte seed in base64, mode 0600 in a 0700 directory, made on first run; and `known_peers`
/// beside it. A run holds an exclusive lock on the identity file: a second run of the same user
/// at the same time gets a throwaway key instead (the same node id twice in a room would make
/// each replace the other).
public final class IdentityStore: Sendable {
    public let identity: PeerIdentity
    /// Nil for a throwaway identity (`--ephemeral`, or the identity in use by another run).
    public let knownPeers: KnownPeersBook?
    /// The files offered in earlier runs (`offers` beside the identity); nil with a throwaway key,
    /// whose offers no later run could serve anyway.
    public let offeredFiles: OfferedFilesBook?
    /// What the user should hear about how the identity was found, if anything.
    public let notes: [String]

    public enum Failure: Error, CustomStringConvertible {
        case unreadable(String, String)
        case unwritable(String, String)

        public var description: String {
            switch self {
            case .unreadable(let path, let why): "cannot read your identity at \(path) (\(why)): fix or remove it"
            case .unwritable(let path, let why): "cannot keep your identity at \(path) (\(why))"
            }
        }
    }

    private init(identity: PeerIdentity, knownPeers: KnownPeersBook?, offeredFiles: OfferedFilesBook? = nil, notes: [String]) {
        self.identity = identity
        self.knownPeers = knownPeers
        self.offeredFiles = offeredFiles
        self.notes = notes
    }

    /// A throwaway identity: nothing read, nothing written.
    public static func ephemeral() -> IdentityStore {
        IdentityStore(identity: PeerIdentity(), knownPeers: nil, notes: [])
    }

    public static func open(environment: [String: String] = ProcessInfo.processInfo.environment) throws(Failure) -> IdentityStore {
        let directory = Self.directory(environment)
        let path = directory + "/identity"
        if let why = FileDesk.makeFolders(directory, mode: 0o700) { throw .unwritable(directory, why) }
        var notes: [String] = []
        var fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        // A key made read-only (`chmod 400`, as ssh users do with theirs) or on a read-only file
        // system is still the user's key: reading is all a run needs of it, and a lock holds on a
        // descriptor opened for reading.
        if fd < 0 && (errno == EACCES || errno == EROFS) { fd = Glibc.open(path, O_RDONLY | O_CLOEXEC) }
        if fd < 0 && errno == ENOENT {
            fd = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 {
                let seed = RandomBytes.make(32)
                let line = Array((Base64.encode(seed) + "\n").utf8)
                guard Glibc.write(fd, line, line.count) == line.count, fsync(fd) == 0 else {
                    let why = String(cString: strerror(errno))
                    Glibc.close(fd)
                    unlink(path)
                    throw .unwritable(path, why)
                }
                notes.append("made your identity at \(path) (fingerprint \(Fingerprint.full(try! PeerIdentity(seed: seed).node)))")
            }
        }
        guard fd >= 0 else { throw .unreadable(path, String(cString: strerror(errno))) }
        // Held until the process ends: the descriptor is never closed.
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(fd)
            return IdentityStore(identity: PeerIdentity(), knownPeers: nil,
                                 notes: ["your identity at \(path) is in use by another levchat-peer; this run uses a throwaway key"])
        }
        var status = stat()
        if fstat(fd, &status) == 0, status.st_mode & 0o077 != 0 {
            notes.append("your identity at \(path) can be read by other users: chmod 600 it")
        }
        var bytes = [UInt8](repeating: 0, count: 256)
        let count = pread(fd, &bytes, bytes.count, 0)
        guard count > 0 else { throw .unreadable(path, count == 0 ? "it is empty" : String(cString: strerror(errno))) }
        let text = String(decoding: bytes.prefix(count), as: UTF8.self).trimmingWhitespace()
        guard let seed = Base64.decode(text), seed.count == 32, let identity = try? PeerIdentity(seed: seed) else {
            throw .unreadable(path, "it does not hold a key")
        }
        return IdentityStore(identity: identity, knownPeers: KnownPeersBook(path: directory + "/known_peers"),
                             offeredFiles: OfferedFilesBook(path: directory + "/offers"), notes: notes)
    }

    static func directory(_ environment: [String: String]) -> String {
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") { return state + "/levchat" }
        return FileDesk.home(environment) + "/.local/state/levchat"
    }

}

/// The known_peers file and what it holds (`KnownPeers`): read at start, written whole (through a
/// temporary file and a rename) when a new name is met. The writing happens on a queue of its own:
/// members are met on the host's event loop, which must not wait on a disk.
public final class KnownPeersBook: Sendable {
    private let path: String
    private let book: Mutex<(peers: KnownPeers, saveQueued: Bool)>
    private let disk = DispatchQueue(label: "levchat-known-peers")

    init(path: String) {
        self.path = path
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        book = Mutex((KnownPeers(parsing: text), false))
    }

    /// For tests: a book in memory only.
    public init(_ peers: KnownPeers = KnownPeers()) {
        path = ""
        book = Mutex((peers, false))
    }

    public func meet(name: String, node: NodeID) -> KnownPeers.Verdict {
        let (verdict, queueSave) = book.withLock { book -> (KnownPeers.Verdict, Bool) in
            let verdict = book.peers.meet(name: name, node: node, today: Self.today())
            guard verdict == .new, !path.isEmpty, !book.saveQueued else { return (verdict, false) }
            book.saveQueued = true
            return (verdict, true)
        }
        // One write for a burst of new names (a roster of 500 on entering), with all of them.
        if queueSave {
            disk.async { [self] in
                let text = book.withLock { book in
                    book.saveQueued = false
                    return book.peers.text
                }
                save(text)
            }
        }
        return verdict
    }

    /// Waits until what was met so far is on disk (the end of a run).
    public func flush() {
        disk.sync {}
    }

    public func entry(for name: String) -> KnownPeers.Entry? {
        book.withLock { $0.peers.entry(for: name) }
    }

    /// Where a failed save is told (`SaveFailureNotice`).
    public let saveFailures = SaveFailureNotice()

    private func save(_ text: String) {
        if let reason = Self.save(text, to: path) {
            saveFailures.failed("cannot keep known_peers at \(path) (\(reason)): the names and keys met in this run are not "
                                + "remembered, so a changed key among them will not be noticed next time")
        }
    }

    /// Writes `text` as the file at `path`, whole or not at all (a temporary file and a rename);
    /// nil, or the system's reason it could not.
    static func save(_ text: String, to path: String) -> String? {
        let temporary = path + ".tmp"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        // All of it, short writes written on (the parts' writer).
        var failure = Array(text.utf8).withUnsafeBytes { FileDesk.write(fd, $0) }
        Glibc.close(fd)
        if failure == nil, rename(temporary, path) != 0 { failure = errno }
        guard let failure else { return nil }
        unlink(temporary)
        return String(cString: strerror(failure))
    }

    static func today() -> String {
        var seconds = time(nil)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))"
    }
}

/// The `offers` file and what it holds (`OfferedFiles`): read at start, written whole (through a
/// temporary file and a rename, mode 0600: it names files of this user) after each `/send` of a
/// file, on a queue of its own.
public final class OfferedFilesBook: Sendable {
    private let path: String
    private let book: Mutex<OfferedFiles>
    private let disk = DispatchQueue(label: "levchat-offers")

    init(path: String) {
        self.path = path
        book = Mutex(OfferedFiles(parsing: (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""))
    }

    /// For tests: a book in memory only.
    public init(_ offers: OfferedFiles = OfferedFiles()) {
        path = ""
        book = Mutex(offers)
    }

    public func remember(_ offer: FileOffer, at file: String, room: RoomID) {
        let text = book.withLock { book in
            book.remember(OfferedFiles.Entry(day: KnownPeersBook.today(), room: room, path: file, offer: offer))
            return book.text
        }
        guard !path.isEmpty else { return }
        disk.async { [path, saveFailures] in
            if let reason = KnownPeersBook.save(text, to: path) {
                saveFailures.failed("cannot keep the list of your offers at \(path) (\(reason)): once this run ends, "
                                    + "a fetch of them cannot resume from a later run")
            }
        }
    }

    /// Where a failed save is told (`SaveFailureNotice`).
    public let saveFailures = SaveFailureNotice()

    public func entry(file token: String, room: RoomID) -> OfferedFiles.Entry? {
        book.withLock { $0.entry(file: token, room: room) }
    }

    /// Waits until what was offered so far is on disk (the end of a run).
    public func flush() {
        disk.sync {}
    }
}

/// Tells the user, once a run, that a state file could not be written (a full disk, a folder made
/// read-only): what it holds then lasts for this run only. It went unsaid, and a changed key went
/// unnoticed the next run. A failure before anyone listens is told when someone does.
public final class SaveFailureNotice: Sendable {
    private struct State {
        var tell: (@Sendable (String) -> Void)?
        var unheard: String?
        var told = false
    }
    private let state = Mutex(State())

    public func listen(_ tell: @escaping @Sendable (String) -> Void) {
        let unheard = state.withLock { state -> String? in
            state.tell = tell
            defer { state.unheard = nil }
            if state.unheard != nil { state.told = true }
            return state.unheard
        }
        if let unheard { tell(unheard) }
    }

    func failed(_ sentence: String) {
        let tell = state.withLock { state -> (@Sendable (String) -> Void)? in
            guard !state.told else { return nil }
            guard let tell = state.tell else {
                state.unheard = state.unheard ?? sentence
                return nil
            }
            state.told = true
            return tell
        }
        tell?(sentence)
    }
}
