import Foundation
import LevChatCore
import LevChatTransport
import Logging
import Synchronization
import Testing
@testable import LevChatPeer

/// One event a peer printed (its `--json` output), with the fields the scenarios read.
struct PrintedEvent: Sendable, CustomStringConvertible {
    let line: String
    let type: String
    /// The top-level strings, numbers and booleans, as text.
    let fields: [String: String]
    /// The names in a `members` array (`entered`, `members`).
    let members: [String]
    /// The texts in a `messages` array (`history`).
    let messages: [String]

    init(_ line: String) {
        self.line = line
        let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
        type = object["type"] as? String ?? ""
        var fields: [String: String] = [:]
        for (key, value) in object {
            if let text = value as? String { fields[key] = text } else if let number = value as? NSNumber { fields[key] = number.stringValue }
        }
        self.fields = fields
        members = (object["members"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        messages = (object["messages"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
    }

    subscript(key: String) -> String? { fields[key] }
    var isMessage: Bool { type == "message" }
    var description: String { line }
}

/// Everything one peer printed, in order, and waits for what it has not printed yet. Waits end
/// when the output arrives (each line wakes them), or fail after a generous time: a slow machine
/// only makes a scenario slower, never changes its verdict.
final class Transcript: Sendable {
    struct Timeout: Error, CustomStringConvertible {
        let what: String
        let printed: [PrintedEvent]
        let logged: [String]
        /// The other peers of the LAN: name, output and log.
        let others: [(String, [PrintedEvent], [String])]
        var description: String {
            "timed out waiting for \(what); printed:\n" + printed.map(\.line).joined(separator: "\n")
                + "\nlogged:\n" + logged.suffix(40).joined()
                + others.map { name, printed, logged in
                    "\n--- \(name) printed:\n" + printed.suffix(20).map(\.line).joined(separator: "\n")
                        + "\n--- \(name) logged:\n" + logged.suffix(40).joined()
                }.joined()
        }
    }

    private struct Waiter {
        let satisfied: @Sendable ([PrintedEvent]) -> Bool
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var events: [PrintedEvent] = []
        var diagnostics: [String] = []
        var partial: [UInt8] = []
        var waiters: [Int: Waiter] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())
    /// The LAN's time: it passes while this transcript is waited on, and output is activity.
    private let time: TimeKeeper
    /// The other transcripts of the same LAN, for the story of a failed wait.
    let neighbours = Mutex<[(String, Transcript)]>([])

    var events: [PrintedEvent] { state.withLock { $0.events } }
    var diagnostics: [String] { state.withLock { $0.diagnostics } }
    var messages: [String] { events.filter(\.isMessage).compactMap { $0["text"] } }

    init(time: TimeKeeper) { self.time = time }

    var sink: ConsoleSink {
        { [self] fd, bytes in take(fd, bytes) }
    }

    private func take(_ fd: Int32, _ bytes: [UInt8]) {
        time.clock.noteActivity()
        let woken = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            guard fd == 1 else {
                s.diagnostics.append(String(decoding: bytes, as: UTF8.self))
                return []
            }
            s.partial += bytes
            while let end = s.partial.firstIndex(of: 10) {
                s.events.append(PrintedEvent(String(decoding: s.partial[..<end], as: UTF8.self)))
                s.partial.removeSubrange(...end)
            }
            let events = s.events
            let done = s.waiters.filter { $0.value.satisfied(events) }
            for id in done.keys { s.waiters.removeValue(forKey: id) }
            return done.values.map(\.continuation)
        }
        woken.forEach { $0.resume(returning: true) }
    }

    /// Waits until the output so far satisfies `condition`; returns the events then.
    @discardableResult
    func wait(for what: String, timeout: Duration = .seconds(60),
              until condition: @escaping @Sendable ([PrintedEvent]) -> Bool) async throws -> [PrintedEvent] {
        let met = await time.whileTimeRuns { await withTaskGroup(of: Bool.self) { group in
            let id = state.withLock { s -> Int in s.nextWaiter += 1; return s.nextWaiter }
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now = self.state.withLock { s -> Bool in
                        if condition(s.events) { return true }
                        s.waiters[id] = Waiter(satisfied: condition, continuation: continuation)
                        return false
                    }
                    if now { continuation.resume(returning: true) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                // Ends the wait above (if it is still waiting) as failed.
                self.state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume(returning: false)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        } }
        guard met else {
            let others = neighbours.withLock { $0 }.filter { $0.1 !== self }.map { ($0.0, $0.1.events, $0.1.diagnostics) }
            throw Timeout(what: what, printed: events, logged: diagnostics, others: others)
        }
        return events
    }

    /// Waits until `text` was shown as a chat line this many times in all.
    func waitForMessage(_ text: String, count: Int = 1) async throws {
        try await wait(for: "the line \"\(text)\"") { events in events.filter { $0.isMessage && $0["text"] == text }.count >= count }
    }
}

/// A peer of an in-process room: the real `Peer.create` / `Peer.join` with scripted input, its
/// `--json` output in a transcript, on a machine of a `LoopbackLAN`.
final class InProcessPeer: Sendable {
    let name: String
    let machine: LoopbackLAN.Machine
    let input = StandardInput.scripted()
    let transcript: Transcript
    private let lan: LoopbackLAN
    private let run: Task<PeerOutcome, Never>

    /// `identity`: the peer's key, whose node its console knows from the start, as the CLI's does.
    private init(name: String, machine: LoopbackLAN.Machine, lan: LoopbackLAN, identity: PeerIdentity,
                 start: @escaping @Sendable (Console, StandardInput, Logger) async -> PeerOutcome) {
        self.name = name
        self.machine = machine
        self.lan = lan
        transcript = Transcript(time: lan.time)
        let console = Console(json: true, me: identity.node, sink: transcript.sink)
        // The peer's log goes to its transcript (shown when a wait fails).
        let logger = Logger(label: name) { label in ConsoleLogHandler(label: label, console: console, level: .debug) }
        run = Task { [input] in await start(console, input, logger) }
        let everyone = lan.transcripts.withLock { all in all.append((name, transcript)); return all }
        for (_, other) in everyone { other.neighbours.withLock { $0 = everyone } }
    }

    /// Timings short enough for whole rooms in a second or two, long enough that a busy CI machine
    /// does not take a live host for dead (and if it did, the room's promises still hold). What
    /// only bounds a wait that succeeds (a handshake, finding the room) is generous.
    static func settings(_ name: String, on machine: LoopbackLAN.Machine, lan: LoopbackLAN,
                         discoveryTimeout: Duration = .seconds(30)) -> PeerSettings {
        var settings = PeerSettings(name: name, bindHost: machine.address, port: 0,
                                    timings: RoomTimings(heartbeat: .milliseconds(250), deadAfter: .seconds(2), handshakeTimeout: .seconds(30)),
                                    connectTimeout: .seconds(10))
        settings.discoveryTimeout = discoveryTimeout
        settings.succession.collectWindow = .milliseconds(500)
        settings.succession.stagger = .milliseconds(300)
        settings.succession.lostMembersAsked = lan.lostMembersAsked
        settings.network = lan.network(for: machine)
        let discovery = lan.discovery(for: machine)
        settings.discovery = { _ in discovery }
        return settings
    }

    /// Creates a room (advertised on the LAN) and waits until it is open.
    static func create(_ name: String, on lan: LoopbackLAN) async throws -> (InProcessPeer, RoomCode) {
        let machine = lan.machine()
        let settings = settings(name, on: machine, lan: lan)
        let identity = PeerIdentity()
        let peer = InProcessPeer(name: name, machine: machine, lan: lan, identity: identity) { console, input, logger in
            await Peer.create(settings: settings, identity: identity, advertise: true, console: console, logger: logger, input: input)
        }
        let events = try await peer.transcript.wait(for: "the room") { $0.contains { $0.type == "entered" } }
        let code = try RoomCode(parsing: events.first { $0.type == "room" }?["code"] ?? "")
        return (peer, code)
    }

    /// Joins by code through the LAN's discovery (or at `endpoint`); `entered` waits until in.
    /// `files` sets where `/get` puts files and how fast this peer serves its own.
    static func join(_ name: String, code: RoomCode, on lan: LoopbackLAN, at endpoint: String? = nil,
                     entered: Bool = true, discoveryTimeout: Duration = .seconds(30),
                     files: (downloads: String, rate: Int?)? = nil) async throws -> InProcessPeer {
        let machine = lan.machine()
        var settings = settings(name, on: machine, lan: lan, discoveryTimeout: discoveryTimeout)
        settings.downloads = files?.downloads
        settings.fileRate = files?.rate
        let identity = PeerIdentity()
        let peer = InProcessPeer(name: name, machine: machine, lan: lan, identity: identity) { [settings] console, input, logger in
            await Peer.join(code: code, peer: endpoint, settings: settings, identity: identity, console: console,
                            logger: logger, input: input)
        }
        if entered { try await peer.transcript.wait(for: "\(name) in the room") { $0.contains { $0.type == "entered" } } }
        return peer
    }

    func say(_ text: String) { type(.line(text)) }

    /// Typed input is activity: time does not pass before the peer has read it.
    func type(_ event: UserInput) {
        lan.time.clock.noteActivity()
        input.type(event)
    }

    /// Ends the input (a user closing it, or `< /dev/null`) and returns how the run ended.
    func leave() async -> PeerOutcome {
        type(.endOfInput)
        return await outcome
    }

    /// Ctrl-C (or SIGTERM), `times` times, and how the run ended.
    func interrupt(times: Int = 1) async -> PeerOutcome {
        for _ in 0..<times { type(.interrupt) }
        return await outcome
    }

    /// How the run ended. A run that has not ended after a minute is a failure of the test (not a
    /// hang of the suite): it is recorded, and the run is cancelled.
    var outcome: PeerOutcome {
        get async {
            let (name, run, time) = (self.name, self.run, lan.time)
            let watchdog = Task {
                try await Task.sleep(for: .seconds(60))
                Issue.record("\(name) did not end within 60 s")
                run.cancel()
            }
            defer { watchdog.cancel() }
            return await time.whileTimeRuns { await run.value }
        }
    }

    /// The names in the newest `entered` or `members` event.
    var roster: [String] { transcript.events.last { $0.type == "entered" || $0.type == "members" }?.members ?? [] }
    /// The host named in the newest `host` event, if there was one.
    var newestHost: String? { transcript.events.last { $0.type == "host" }?["host"] }
}
