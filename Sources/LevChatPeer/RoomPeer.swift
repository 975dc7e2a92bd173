import LevChatAvahi
import LevChatCore
import LevChatTransport
import Logging
import NIOCore
import Synchronization

/// One peer in one room, whatever its role, for its whole run: it owns the listener, the user's
/// input and the advertisement, and switches between member and host in place (Docs/MIGRATION.md).
///
/// - As a member it runs one link at a time. When the link ends by `handover` it follows the named
///   successor (or becomes it); when the host is lost it finds the next host (`elect`).
/// - As a host it relays; when it sees another host of the room with a higher claim it hands its
///   members over and goes on as a member there (partition heal).
///
/// The listener and the host actor share one event loop, so a promotion starts the host on the
/// listener that is already open.
actor RoomPeer {
    enum Role: Equatable {
        case member(MemberService)
        case host(HostService)

        /// The same service, not an equal one.
        static func == (a: Role, b: Role) -> Bool {
            switch (a, b) {
            case (.member(let x), .member(let y)): x === y
            case (.host(let x), .host(let y)): x === y
            default: false
            }
        }
    }

    /// How hosting ended.
    enum HostEnd {
        case left
        /// Another host had the higher claim; this peer now resumes there as a member.
        case yielded(MemberService, Handover)
    }

    enum MemberEnd {
        case outcome(PeerOutcome)
        case promote(MemberService, epoch: Int)
    }

    enum Decision {
        case join([String])
        case promote(epoch: Int)
        case left(PeerOutcome)
    }

    private var role: Role
    /// A promotion or a yield is changing `role`; input and leaving wait for it (`untilSettled`).
    private var switching = false
    private let roleSwitch = StateWaiters()
    private var leaving = false
    private var interruptions = 0
    private var hostEnd: HostEnd?
    private var advertising: (any RoomAdvertising)?
    private let keyring: RoomKeyring
    private let addressGuard: AddressGuard
    private let identity: PeerIdentity
    private nonisolated var me: NodeID { identity.node }
    private let listener: FramedListener
    private let listenPort: Int
    private let eventLoop: any EventLoop
    private let advertise: Bool
    private let discovery: AvahiDiscovery
    private let settings: PeerSettings
    private let console: Console
    private let logger: Logger
    private let clock = PeerClock()

    init(role: Role, identity: PeerIdentity, keyring: RoomKeyring, guard addressGuard: AddressGuard, listener: FramedListener,
         eventLoop: any EventLoop, advertising: (any RoomAdvertising)?, advertise: Bool, settings: PeerSettings,
         console: Console, logger: Logger) {
        self.role = role
        self.identity = identity
        self.keyring = keyring
        self.addressGuard = addressGuard
        self.listener = listener
        listenPort = listener.channel.localAddress?.port ?? 0
        self.eventLoop = eventLoop
        self.advertising = advertising
        self.advertise = advertise
        discovery = AvahiDiscovery(logger: logger)
        self.settings = settings
        self.console = console
        self.logger = logger
    }

    /// Runs until the user leaves or the room cannot go on. `firstCandidates` gives a joiner the
    /// endpoints to try first, best first, and nil when there are no more.
    func run(firstCandidates: @escaping @Sendable () async -> String?, input: StandardInput) async -> PeerOutcome {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.acceptConnections() }
            group.addTask { await self.relay(input) }
            group.addTask { await self.watch(input.interrupts) }
            let outcome = await playRoles(firstCandidates: firstCandidates)
            await withdraw()
            group.cancelAll()
            return outcome
        }
    }

    private func playRoles(firstCandidates: @escaping @Sendable () async -> String?) async -> PeerOutcome {
        var next: MemberEnd
        switch role {
        case .host(let host):
            next = await hostThenMaybeMember(host)
        case .member(let member):
            next = await runMember(member, firstCandidates: firstCandidates, resumingAfter: nil)
        }
        while true {
            switch next {
            case .outcome(let outcome):
                return outcome
            case .promote(let member, let epoch):
                let host = await promote(member, epoch: epoch)
                next = await hostThenMaybeMember(host)
            }
        }
    }

    private func hostThenMaybeMember(_ host: HostService) async -> MemberEnd {
        switch await runHost(host) {
        case .left:
            return .outcome(.left)
        case .yielded(let member, let handover):
            return await runMember(member, firstCandidates: { nil }, resumingAfter: .handover(handover))
        }
    }

    // MARK: Member

    /// Joins (when the session has no room yet) and stays in the room across host changes.
    private func runMember(_ member: MemberService, firstCandidates: @escaping @Sendable () async -> String?,
                           resumingAfter first: MemberSession.Ending?) async -> MemberEnd {
        var ending: MemberSession.Ending
        if let first {
            ending = first
        } else {
            switch await joinFirst(member, firstCandidates: firstCandidates) {
            case .outcome(let outcome): return .outcome(outcome)
            case .ending(let end): ending = end
            }
        }
        while true {
            if let left = await member.leaveOutcome { return .outcome(left) }
            let result: MemberService.LinkResult?
            switch ending {
            case .roomClosed: return .outcome(.roomClosed)
            case .refused(let info): return .outcome(.refused(info))
            case .protocolViolation(let why): return .outcome(.protocolViolation(why))
            case .handover(let handover):
                if handover.host.node == me { return .promote(member, epoch: handover.epoch) }
                result = await follow(handover, member)
            case .redirected(let redirect) where !redirect.endpoints.isEmpty:
                result = await attempt(redirect.endpoints, member)
            case .hostLost, .redirected:
                logger.info("lost the host (\(ending)); finding the next one")
                switch await elect(member) {
                case .left(let outcome): return .outcome(outcome)
                case .promote(let epoch): return .promote(member, epoch: epoch)
                case .join(let endpoints): result = await attempt(endpoints, member)
                }
            }
            switch result {
            case .left(let outcome)?: return .outcome(outcome)
            case .ended(let end)?: ending = end
            case .failed?, nil: ending = .hostLost("the next host did not answer")
            }
        }
    }

    enum FirstJoin {
        case outcome(PeerOutcome)
        case ending(MemberSession.Ending)
    }

    /// The first way in: candidates from discovery (or `--peer`), following redirects.
    private func joinFirst(_ member: MemberService, firstCandidates: @escaping @Sendable () async -> String?) async -> FirstJoin {
        var lastFailure: ConnectFailure?
        var redirects: [String] = []
        var hops = 0
        while true {
            let endpoint: String
            if !redirects.isEmpty {
                endpoint = redirects.removeFirst()
            } else if let next = await firstCandidates() {
                endpoint = next
            } else {
                return .outcome(lastFailure.map(PeerOutcome.connectFailed) ?? .roomNotFound)
            }
            switch await member.link(to: endpoint, listenPort: listenPort, timeout: settings.connectTimeout) {
            case .failed(let failure):
                lastFailure = failure
            case .left(let outcome):
                return .outcome(outcome)
            case .ended(let ending):
                if await member.session.hasRoom { return .ending(ending) }
                switch ending {
                case .redirected(let redirect) where hops < 8:
                    hops += 1
                    redirects = redirect.endpoints + redirects
                    if redirect.endpoints.isEmpty { try? await Task.sleep(for: settings.succession.retry); redirects = [endpoint] }
                case .redirected: lastFailure = .other("too many redirects")
                case .refused(let info): return .outcome(.refused(info))
                case .protocolViolation(let why): return .outcome(.protocolViolation(why))
                case .roomClosed: return .outcome(.roomClosed)
                case .hostLost(let why): return .outcome(.hostLost(why))
                case .handover: lastFailure = .other("the host left while we joined")
                }
            }
        }
    }

    /// Graceful host change: the successor is named; it may need a moment to take over.
    private func follow(_ handover: Handover, _ member: MemberService) async -> MemberService.LinkResult? {
        let deadline = ContinuousClock.now + settings.timings.deadAfter
        while ContinuousClock.now < deadline {
            if let result = await attempt(handover.host.endpoints, member) {
                if case .ended(.redirected(let redirect)) = result, redirect.role != .host {
                    try? await Task.sleep(for: .milliseconds(20))
                    continue
                }
                return result
            }
            try? await Task.sleep(for: settings.succession.retry)
        }
        return nil
    }

    /// Links to the first of these endpoints that answers; nil when none did.
    private func attempt(_ endpoints: [String], _ member: MemberService) async -> MemberService.LinkResult? {
        for endpoint in endpoints {
            let result = await member.link(to: endpoint, listenPort: listenPort, timeout: settings.succession.probeTimeout)
            if case .failed = result { continue }
            return result
        }
        return nil
    }

    /// Finds the next host after losing one: rounds of asking every peer of the last roster at
    /// once who the host is, until the rules (`HostSearch`, in the core; Docs/MIGRATION.md) say to
    /// join, to promote this peer, or, when leaving and nobody answers, to give up.
    private func elect(_ member: MemberService) async -> Decision {
        let session = await member.session
        guard let roster = session.roster, session.hasRoom else {
            return .left(.hostLost("lost the host before entering the room"))
        }
        var search = HostSearch(roster: roster, me: me)
        let started = ContinuousClock.now
        while true {
            if let left = await member.leaveOutcome { return .left(left) }
            for await (peer, answer) in probeRound(search.others) {
                if search.record(answer, from: peer.node) { break }
            }
            switch search.decide(elapsed: ContinuousClock.now - started, stagger: settings.succession.stagger, leaving: leaving) {
            case .join(let endpoints): return .join(endpoints)
            case .promote(let epoch): return .promote(epoch: epoch)
            case .giveUp: return .left(await member.giveUp())
            case .retry(let firstTimeAlone):
                if firstTimeAlone { console.show(.notice("lost the host and cannot reach anyone in the room; still trying")) }
            }
            try? await Task.sleep(for: settings.succession.retry)
        }
    }

    /// Asks each peer who the host is, all at once, and yields the answers as they come, for at
    /// most `probeTimeout`. The caller may stop reading early, so a silent peer never holds up a
    /// decision the others already settle; the probes still under way are then cancelled.
    private func probeRound(_ peers: [Member]) -> AsyncStream<(Member, HostSearch.Answer)> {
        let (stream, continuation) = AsyncStream.makeStream(of: (Member, HostSearch.Answer).self)
        let remaining = Mutex(peers.count)
        if peers.isEmpty { continuation.finish() }
        var tasks = peers.map { peer in
            Task {
                var best = HostSearch.Answer.silent
                for endpoint in peer.endpoints.prefix(3) where !Task.isCancelled {
                    let answer = await self.probe(endpoint)
                    if case .silent = answer { continue }
                    best = answer
                    if case .answered = answer { break }
                }
                continuation.yield((peer, best))
                if remaining.withLock({ $0 -= 1; return $0 }) == 0 { continuation.finish() }
            }
        }
        let timeout = settings.succession.probeTimeout
        tasks.append(Task {
            try? await Task.sleep(for: timeout + .milliseconds(50))
            continuation.finish()
        })
        // The round is over when the caller stops reading: the probes still under way end too.
        let round = tasks
        continuation.onTermination = { _ in round.forEach { $0.cancel() } }
        return stream
    }

    /// One "who is the host?" question: connect, prove the room secret both ways, ask, read the
    /// answer, all within `probeTimeout`.
    nonisolated func probe(_ endpoint: String) async -> HostSearch.Answer {
        let timeout = settings.succession.probeTimeout
        let me = self.me
        do throws(ConnectError) {
            return try await SecureLink.connect(to: endpoint, keyring: keyring, role: "probe", connectTimeout: timeout,
                                                handshakeTimeout: timeout) { link -> HostSearch.Answer in
                let deadline = link.closeAfter(timeout)
                defer { deadline.cancel() }
                guard (try? await link.send(.probe(Probe(node: me)))) != nil,
                      case .redirect(let redirect)? = try? await link.receive() else { return .silent }
                return .answered(redirect)
            }
        } catch .handshake(.redirected(let redirect)) {
            return .answered(redirect)
        } catch {
            return error.wasRefused ? .refused : .silent
        }
    }

    // MARK: Host

    private func promote(_ member: MemberService, epoch: Int) async -> HostService {
        switching = true
        defer { settled() }
        let session = await member.detach()
        let you = session.you ?? Member(node: me, name: settings.name, ordinal: 1, endpoints: [])
        let endpoints = you.endpoints + LocalEndpoints.list(bindHost: settings.bindHost, port: listenPort).filter { !you.endpoints.contains($0) }
        let previous = session.roster ?? RosterSnapshot(epoch: epoch - 1, host: me, members: [you])
        // A member with a roster was welcomed, so the keyring holds the room's grant.
        let room = HostRoom(promoting: Member(node: me, name: you.name, ordinal: you.ordinal, endpoints: endpoints),
                            identity: identity, grant: keyring.grant!, log: session.log, previous: previous, epoch: epoch, nextSenderSeq: session.nextSenderSeq,
                            outbox: session.outbox, window: settings.succession.collectWindow, now: clock.now(),
                            limits: settings.limits, timings: settings.timings)
        let host = HostService(room: room, keyring: keyring, guard: addressGuard, eventLoop: eventLoop, settings: settings,
                               console: console, logger: logger)
        role = .host(host)
        logger.info("promoted to host at epoch \(epoch)")
        await readvertise(epoch: epoch)
        return host
    }

    private func runHost(_ host: HostService) async -> HostEnd {
        hostEnd = nil
        if leaving { await host.leave() }
        await withDiscardingTaskGroup { group in
            if let advertising { group.addTask { await self.discovery.supervise(advertising) } }
            if advertise { group.addTask { await self.watchForHigherClaims(host) } }
            group.addTask { await self.askLostMembers(host) }
            await host.runUntilStopped()
            group.cancelAll()
        }
        return hostEnd ?? .left
    }

    /// Partition heal: another host of this room (same room id, proven by a probe that holds the
    /// room secret) with a higher claim (`HostClaim`) takes this host's members.
    private func watchForHigherClaims(_ host: HostService) async {
        guard let events = try? await discovery.browse() else { return }
        await withDiscardingTaskGroup { group in
            for await event in events {
                guard case .found(let service) = event, let grant = keyring.grant,
                      let advertisement = RoomAdvertisement(instanceName: service.instanceName, port: service.port, txt: service.txt),
                      advertisement.roomID == grant.roomID,
                      !advertisement.instanceName.hasPrefix(RoomAdvertisement.instanceName(room: grant.roomID, host: me))
                else { continue }
                let epoch = await host.epoch
                guard advertisement.epoch >= epoch else { continue }
                let endpoint = Endpoint.format(host: service.address, port: service.port)
                group.addTask { await self.challenge(endpoint, host) }
            }
        }
    }

    private func challenge(_ endpoint: String, _ host: HostService) async {
        for _ in 0..<5 where !Task.isCancelled {
            if case .answered(let redirect) = await probe(endpoint), redirect.role == .host {
                await yieldIfStronger(redirect, at: endpoint, host)
                return
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Partition heal without mDNS timing: members this host lost may be with another host of the
    /// room now (a split), so it asks them every few seconds who their host is.
    private func askLostMembers(_ host: HostService) async {
        let interval = max(settings.timings.heartbeat * 2, .seconds(1))
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            for member in await host.recentlyLost() where !Task.isCancelled {
                for endpoint in member.endpoints.prefix(2) {
                    guard case .answered(let redirect) = await probe(endpoint) else { continue }
                    switch redirect.role {
                    case .host?:
                        await yieldIfStronger(redirect, at: endpoint, host)
                    case .member?:
                        for hostEndpoint in redirect.endpoints.prefix(2) {
                            if case .answered(let answer) = await probe(hostEndpoint), answer.role == .host {
                                await yieldIfStronger(answer, at: hostEndpoint, host)
                                break
                            }
                        }
                    default: break
                    }
                    break
                }
            }
        }
    }

    /// Yields to the host that answered, if its (authenticated) claim beats this host's.
    private func yieldIfStronger(_ answer: Redirect, at endpoint: String, _ host: HostService) async {
        guard answer.role == .host, let epoch = answer.epoch, let node = answer.node, node != me else { return }
        let room = await host.room
        let mine = HostClaim(epoch: room.epoch, ordinal: room.me.ordinal, node: me)
        guard HostClaim(epoch: epoch, ordinal: answer.ordinal ?? Int.max, node: node).beats(mine) else { return }
        let target = Member(node: node, name: "", ordinal: answer.ordinal ?? 0,
                            endpoints: [endpoint] + answer.endpoints.filter { $0 != endpoint })
        await yield(host, to: target, epoch: epoch)
    }

    private func yield(_ host: HostService, to target: Member, epoch: Int) async {
        // `switching` too: two heal checks that both found a stronger host would otherwise both
        // yield, the second replacing the member the first made, and with it a line the user typed
        // meanwhile (the fault soak lost one so, seed 370879).
        guard case .host(let current) = role, current === host, hostEnd == nil, !leaving, !switching else { return }
        switching = true
        defer { settled() }
        console.show(.notice("this room also has a host elsewhere with the stronger claim; moving there"))
        let room = await host.yield(to: target, epoch: epoch)
        await withdraw()
        let session = MemberSession(continuing: room, now: clock.now(), limits: settings.limits, timings: settings.timings)
        let member = MemberService(session: session, keyring: keyring, settings: settings, console: console, logger: logger)
        role = .member(member)
        hostEnd = .yielded(member, Handover(epoch: epoch, host: target))
    }

    private func readvertise(epoch: Int) async {
        await withdraw()
        guard advertise, let grant = keyring.grant else { return }
        do {
            advertising = try await discovery.advertise(RoomAdvertisement(room: grant.roomID, host: me, epoch: epoch, port: listenPort))
        } catch {
            console.show(.notice("could not advertise the room over mDNS (\(error)); members can still reach this host"))
        }
    }

    private func withdraw() async {
        await advertising?.withdraw()
        advertising = nil
    }

    // MARK: Input and inbound connections

    /// Lines to the room, one at a time: the next is read only once this one is taken and the
    /// send window has room (Docs/PROTOCOL.md, "Flow control").
    private func relay(_ input: StandardInput) async {
        for await event in input.events {
            guard case .line(let text) = event, interruptions == 0 else { break }
            if !(await handle(text)) { break }
            input.consumed()
        }
        await leave()
    }

    private func handle(_ text: String) async -> Bool {
        let line = InputLine(parsing: text)
        if line == .code {
            console.showCode(keyring.code)
            return true
        }
        // A role switch can begin while the line is on its way to the role's actor; the service
        // that no longer holds the room then refuses it, and it goes to the next one (a line
        // posted into a room already handed on would be lost: the fault soak found that).
        while true {
            await untilSettled()
            let outcome: LineOutcome
            let current = role
            switch current {
            case .host(let host):
                outcome = await host.handle(line)
                if outcome == .taken { await host.waitForSendWindow() }
            case .member(let member):
                outcome = await member.handle(line)
                if outcome == .taken { await member.waitForSendWindow() }
            }
            switch outcome {
            case .taken: return true
            case .quit: return false
            // Refused with no switch begun since: that role stopped for good (it is leaving).
            case .notTaken where !switching && current == role: return false
            case .notTaken: continue
            }
        }
    }

    /// Ctrl-C or a signal: the relay stops taking lines and leaves; a second one gives up waiting
    /// for echoes.
    private func watch(_ interrupts: AsyncStream<Void>) async {
        for await _ in interrupts {
            interruptions += 1
            if case .member(let member) = role { await member.interrupt(again: interruptions > 1) }
        }
    }

    /// Leaves in whatever role this peer has by then: a member that is promoted while it waits
    /// for its echoes leaves as a host, handing the room on.
    private func leave() async {
        leaving = true
        while true {
            await untilSettled()
            switch role {
            case .host(let host):
                hostEnd = .left
                await host.leave()
                await withdraw()
                return
            case .member(let member):
                if await member.leave() { return }
            }
        }
    }

    /// Returns once no promotion or yield is under way.
    private func untilSettled() async {
        await roleSwitch.wait { switching }
    }

    private func settled() {
        switching = false
        roleSwitch.changed()
    }

    private func acceptConnections() async {
        try? await listener.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in inbound {
                    switch self.role {
                    case .host(let host): group.addTask { await host.serve(connection) }
                    case .member(let member): group.addTask { await self.answer(connection, member) }
                    }
                }
            }
        }
    }

    /// A member answers whoever calls it (a joiner with the code, a member with the room secret
    /// finding the next host) with where the host is, or that it is itself finding one. A joiner
    /// with the code gets that before any CPace: only the host answers guesses of the code.
    private nonisolated func answer(_ connection: FramedChannel, _ member: MemberService) async {
        let timeout = settings.timings.handshakeTimeout
        _ = await SecureLink.accept(connection, keyring: keyring, guard: addressGuard, timeout: timeout,
                                    redirectingCodeJoiners: { await self.whereIsTheHost(member).withoutWhoAnswered }) { link in
            let deadline = link.closeAfter(timeout)
            defer { deadline.cancel() }
            guard (try? await link.receive()) != nil else { return }
            let answer = await self.whereIsTheHost(member)
            try? await link.send(.redirect(answer))
        }
    }

    private func whereIsTheHost(_ member: MemberService) async -> Redirect {
        let session = await member.session
        let epoch = session.roster?.epoch
        let ordinal = session.you?.ordinal
        if !switching, await member.isLinked, let host = await member.hostEndpoint {
            return Redirect(endpoints: [host], role: .member, epoch: epoch, node: me, ordinal: ordinal)
        }
        return Redirect(endpoints: [], role: .electing, epoch: epoch, node: me, ordinal: ordinal)
    }
}

extension Redirect {
    /// For someone who has not proved anything yet: where the host is (as the advertisement says
    /// too), not which member answered.
    var withoutWhoAnswered: Redirect { Redirect(endpoints: endpoints, role: role, epoch: epoch) }
}
