import LevChatCore
import LevChatTransport
import Logging
import NIOCore
import Synchronization

/// The member role: one authenticated link at a time to a host, carried by the `MemberSession`
/// state machine, which outlives the link so that the next host gets this member's log and
/// outbox. The reader runs in the connection's own task; a writer and a ticker run beside it.
/// Every ending finishes the outbound queue, the writer then closes the link, and the reader sees
/// the end: one way out.
public actor MemberService {

    public private(set) var session: MemberSession
    private var queue: OutboundQueue?
    private var ending: MemberSession.Ending?
    private var leftWith: PeerOutcome?
    public private(set) var hostEndpoint: String?
    private let keyring: RoomKeyring
    private let settings: PeerSettings
    private let console: Console
    private let logger: Logger
    private let clock: PeerClock
    /// Tasks waiting for the outbox to change (the send window, leaving); woken after every
    /// batch of actions, and when the wait must end for another reason.
    private let changes = StateWaiters()
    private var leaving = false
    /// The user interrupted: a wait for the send window ends (the peer then leaves); twice, and
    /// leaving gives up waiting for echoes.
    private var interrupted = false
    private var impatient = false
    /// Handed to a promotion: this service is done, its waits end.
    private var detached = false
    /// The connection being made (or the last one made): a user who leaves before a link is up
    /// closes it rather than wait for the handshake's deadline.
    private nonisolated let attempt = Mutex<(any Channel)?>(nil)
    /// When an echo last made the outbox smaller (or a link started).
    private var lastProgress: Duration = .zero

    public init(session: MemberSession, keyring: RoomKeyring, settings: PeerSettings, console: Console, logger: Logger) {
        self.session = session
        self.keyring = keyring
        self.settings = settings
        clock = settings.clock
        self.console = console
        self.logger = logger
    }

    /// Linked to a host right now.
    public var isLinked: Bool { queue != nil && session.isJoined }
    /// How often a peer that proved the room secret asked this one where the host is.
    public private(set) var timesAskedByMembers = 0

    func wasAskedByMember() { timesAskedByMembers += 1 }

    /// The next link joins as `name` (`MemberSession.joinAs`).
    func joinAs(_ name: String) { session.joinAs(name) }

    /// Connects to `endpoint`, joins (or resumes) and runs the session until it ends.
    public func link(to endpoint: String, listenPort: Int, timeout: Duration) async -> LinkResult {
        if let leftWith { return .left(leftWith) }
        do throws(ConnectError) {
            try await connectAndConverse(endpoint: endpoint, listenPort: listenPort, timeout: timeout)
        } catch {
            logger.info("\(endpoint): \(error)")
            // The user left meanwhile (and closed this attempt): that is how it ended.
            if let leftWith { return .left(leftWith) }
            // A member that is not the host answered the code with where the host is.
            if case .handshake(.redirected(let redirect)) = error { return .ended(.redirected(redirect)) }
            return .failed(MemberService.classify(error, endpoint: endpoint))
        }
        queue = nil
        hostEndpoint = nil
        if let leftWith { return .left(leftWith) }
        return .ended(ending ?? .hostLost("the connection to the host closed"))
    }

    private nonisolated func connectAndConverse(endpoint: String, listenPort: Int, timeout: Duration) async throws(ConnectError) {
        try await SecureLink.connect(to: endpoint, over: settings.network, keyring: keyring, connectTimeout: timeout,
                                     handshakeTimeout: settings.timings.handshakeTimeout,
                                     connected: { channel in self.attempt.withLock { $0 = channel } }) { link in
            await self.converse(over: &link, endpoint: endpoint, listenPort: listenPort)
        }
    }

    /// Runs one authenticated link until the session on it ends: a writer and a ticker beside the
    /// reader; every ending finishes the queue, the writer then closes the link, the reader sees
    /// the end.
    private nonisolated func converse(over link: inout SecureLink, endpoint: String, listenPort: Int) async {
        let queue = OutboundQueue()
        await start(queue: queue, hostEndpoint: endpoint, listenPort: listenPort, room: link.roomID, binding: link.binding)
        let (sealer, outbound, channel) = (link.sealer, link.outbound, link.channel)
        var reader = link.reader
        await withDiscardingTaskGroup { group in
            group.addTask {
                try? await SecureWriter.drain(queue, sealer: sealer, to: outbound)
                channel.close(promise: nil)
            }
            group.addTask { await self.tickUntilEnded(queue, channel: channel) }
            do {
                while let message = try await reader.next() {
                    // The welcome gives the key of this host's broadcasts (its epoch, its node).
                    if let broadcasts = await received(message) { reader.expectBroadcasts(broadcasts) }
                }
                await linkClosed()
            } catch {
                await perform([.ended(.hostLost("the link to the host failed: \(error)"))])
            }
            group.cancelAll()
        }
    }

    private func start(queue: OutboundQueue, hostEndpoint: String, listenPort: Int, room: RoomID, binding: [UInt8]) {
        self.queue = queue
        self.hostEndpoint = hostEndpoint
        ending = nil
        lastProgress = clock.now().monotonic
        // The user left while this link was being made (input that ended at once, a signal):
        // nothing to join for; the link ends and `link` reports the leaving.
        guard leftWith == nil else {
            queue.finish()
            return
        }
        perform([.send(session.connect(room: room, binding: binding, listenPort: listenPort, endpoints: [], now: clock.now()))])
    }

    private func linkClosed() {
        perform(session.linkClosed())
    }

    /// The opener for the host's broadcasts from here on, when `message` was the welcome or
    /// moved the room secret forward (`rekey`).
    private func received(_ message: WireMessage) -> BroadcastOpener? {
        let unconfirmed = session.unconfirmedCount
        let hadRoom = session.hasRoom
        let generation = session.grant?.generation
        perform(session.received(message, now: clock.now()))
        if session.unconfirmedCount < unconfirmed { lastProgress = clock.now().monotonic }
        if !hadRoom && session.hasRoom { changes.changed() }
        let welcomed = if case .welcome = message { true } else { false }
        guard welcomed || session.grant?.generation != generation,
              let grant = session.grant, let roster = session.roster, session.isJoined else { return nil }
        // From the first welcome on, this peer can prove itself to the room's next host; each
        // later generation replaces the one before.
        keyring.learn(grant)
        return BroadcastOpener(grant: grant, epoch: roster.epoch, host: roster.host)
    }

    /// One line the user typed. Once the session went to a promotion (`detach`) this service
    /// takes no more: the line goes to the host this peer now is.
    public func handle(_ request: RoomRequest) -> LineOutcome {
        guard !detached else { return .notTaken }
        switch request {
        case .say(let text): perform(session.post(text, now: clock.now()))
        case .act(let text): perform(session.post(text, kind: .action, now: clock.now()))
        case .offer(let text): perform(session.post(text, kind: .offer, now: clock.now()))
        case .nick(let name): perform(session.rename(to: name))
        case .who:
            if let roster = session.roster { console.showMembers(roster, you: session.me) }
            else { console.show(.notice("still joining the room")) }
        case .whois(let name):
            if let roster = session.roster { console.showWhois(name, roster) }
            else { console.show(.notice("still joining the room")) }
        case .history(let count): console.showHistory(session.log, last: count)
        case .quit: return .quit
        }
        return .taken
    }

    /// Returns once the room is entered, or when it will not be through this service: the join
    /// failed, the user interrupted, or the session went to a promotion.
    public func untilInRoom() async {
        await changes.wait { !session.hasRoom && !interrupted && leftWith == nil && !detached }
    }

    /// Returns when the send window has room for another line (Docs/PROTOCOL.md, "Flow
    /// control"), or when this service is done, interrupted or cancelled. Until then the peer reads
    /// no more input.
    public func waitForSendWindow() async {
        await changes.wait { session.isSendWindowFull && !interrupted && !detached }
    }

    /// Leaves once a host echoed everything this member typed. It waits as long as the room goes
    /// on: through host changes, while echoes keep coming. It gives up when no host can be
    /// reached (`giveUp`, from the election), when a linked host echoes nothing for
    /// `leaveStall`, or on a second interrupt. Returns false when the session was handed to a
    /// promotion meanwhile: this peer is then the host, and leaves as one.
    public func leave() async -> Bool {
        leaving = true
        if impatient { giveUp() }
        // Input that ended before the room was entered (a script's `< /dev/null`): enter, then
        // leave. A signal does not wait for that.
        await untilInRoom()
        if session.unconfirmedCount > 0 && leftWith == nil && !detached {
            logger.info("leaving: waiting for the host to confirm \(session.unconfirmedCount) line(s)")
        }
        await changes.wait { session.unconfirmedCount > 0 && leftWith == nil && !detached }
        if detached { return false }
        if leftWith == nil { giveUp() }
        perform(session.leave())
        queue?.finish()
        if queue == nil { attempt.withLock { $0 }?.close(promise: nil) }
        return true
    }

    /// Stops waiting for echoes: what no host confirmed is reported as undelivered.
    @discardableResult
    public func giveUp() -> PeerOutcome {
        let outcome = leftWith ?? (session.unconfirmedCount == 0 ? .left : .leftWithUndelivered(session.unconfirmedCount))
        leftWith = outcome
        changes.changed()
        return outcome
    }

    /// Ctrl-C or a signal: a wait for the send window ends; a second one while leaving gives up.
    public func interrupt(again: Bool) {
        interrupted = true
        if again {
            impatient = true
            if leaving { giveUp() }
        }
        changes.changed()
    }

    /// The user's leaving outcome, once `leave` ran.
    public var leaveOutcome: PeerOutcome? { leftWith }

    /// For a promotion: the session as it stands; this service is done.
    public func detach() -> MemberSession {
        session.abandonLink()
        queue?.finish()
        detached = true
        changes.changed()
        return session
    }

    private func tickUntilEnded(_ queue: OutboundQueue, channel: any Channel) async {
        let interval = max(settings.timings.heartbeat / 4, .milliseconds(10))
        while self.queue === queue && ending == nil && !Task.isCancelled {
            try? await clock.sleep(for: interval)
            // A host silent to the session may only be unread (this peer starved of CPU): what
            // the kernel took from it counts as heard (Docs/MIGRATION.md, "Failure detection").
            if session.isHostSilent(now: clock.now()) {
                let clock = self.clock
                if let arrived = (try? await channel.eventLoop.submit({ clock.lastArrival(on: channel) }).get()) ?? nil {
                    session.dataArrived(at: arrived)
                }
            }
            perform(session.tick(now: clock.now()))
            if leaving && session.unconfirmedCount > 0 && clock.now().monotonic - lastProgress > MemberService.leaveStall {
                logger.warning("leaving: the host echoed nothing for \(MemberService.leaveStall); giving up")
                giveUp()
            }
        }
    }

    /// How long a leaving member waits for a linked host that echoes none of its lines.
    static let leaveStall: Duration = .seconds(30)

    private func perform(_ actions: [MemberSession.Action]) {
        defer { changes.changed() }
        for action in actions {
            switch action {
            case .send(let message):
                // The send window keeps the queue far below its limit; should it fill anyway (a
                // host that stopped reading), the link ends and the outbox goes to the next one.
                if queue?.enqueue(message.encoded()) == false {
                    logger.warning("the link to the host is backed up; reconnecting")
                    if ending == nil { ending = .hostLost("the host stopped reading from this member") }
                    queue?.finish()
                }
            case .show(let event):
                console.show(event)
            case .ended(let ending):
                if self.ending == nil { self.ending = ending }
                queue?.finish()
            case .newBroadcastKey:
                break  // `received` hands the reader the new generation's opener
            }
        }
    }

    static func classify(_ error: ConnectError, endpoint: String) -> ConnectFailure {
        switch error {
        case .unreachable(let where_, let why): return .unreachable("could not reach \(where_): \(why)")
        case .handshake(let failure):
            switch failure {
            case .refused(let info) where info.code == ErrorCode.auth.rawValue:
                return .wrongCode("the room at \(endpoint) did not accept the code")
            case .refused(let info) where info.code == ErrorCode.version.rawValue:
                return .incompatible(info.message.description)
            case .refused(let info) where info.code == ErrorCode.limited.rawValue:
                return .limited("the room at \(endpoint) refuses this address for now: \(info.message)")
            case .wrongRoom: return .wrongCode("the peer at \(endpoint) belongs to another room")
            case .versionMismatch: return .incompatible("the peer at \(endpoint) speaks another protocol version")
            case .hostProofInvalid, .invalidShare:
                return .impostor("the peer at \(endpoint) could not prove it knows the room code: \(failure)")
            case .timedOut: return .unreachable("\(endpoint) did not answer the handshake")
            case .closedEarly: return .unreachable("\(endpoint) closed the connection during the handshake")
            // Another program on that port (an ssh or web server answers with its own greeting):
            // the address is wrong, which the user can mend; not a failure of this program.
            case .malformed, .unexpected:
                return .unreachable("\(endpoint) is not a levchat room: something else answered there (another program on that port?)")
            default: return .other("handshake with \(endpoint) failed: \(failure)")
            }
        }
    }
}
