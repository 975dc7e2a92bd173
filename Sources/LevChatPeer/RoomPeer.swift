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
    private var role: Role
    /// A promotion or a yield is changing `role`; input and leaving wait for it (`untilSettled`).
    private var switching = false
    private let roleSwitch = StateWaiters()
    private var leaving = false
    private var interruptions = 0
    /// The user left by the end of input or `/quit` (not by a signal).
    private var askedToLeave = false
    /// The last `/send`: it may still be hashing its file or reading its folder; the next one
    /// starts when it is done.
    private var lastSend: Task<Void, Never>?
    /// `/send`s typed and not yet offered (or refused): the end of input waits for them, as it
    /// waits for lines to be echoed.
    private var sendsPending = 0
    /// Wakes the end of input's waits: a `/send` done, an interrupt.
    private let inputEnding = StateWaiters()
    private var hostEnd: HostEnd?
    private let keyring: RoomKeyring
    private let addressGuard: AddressGuard
    private let identity: PeerIdentity
    private nonisolated var me: NodeID { identity.node }
    private let listener: FramedListener
    private let listenPort: Int
    private let eventLoop: any EventLoop
    private let advertiser: RoomAdvertiser
    private let discovery: any RoomDiscovery
    private let settings: PeerSettings
    private let console: Console
    private let logger: Logger
    private let clock: PeerClock
    private let files: FileDesk
    private var prober: HostProber { HostProber(network: settings.network, keyring: keyring, me: me, timeout: settings.succession.probeTimeout) }

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
        discovery = settings.discovery(logger)
        advertiser = RoomAdvertiser(enabled: advertise, current: advertising, discovery: discovery, console: console)
        self.settings = settings
        clock = settings.clock
        self.console = console
        self.logger = logger
        files = FileDesk(console: console, keyring: keyring, settings: settings, identity: identity, logger: logger)
    }

    /// Runs until the user leaves or the room cannot go on. `firstCandidates` gives a joiner the
    /// endpoints to try first, best first, and nil when there are no more.
    func run(firstCandidates: @escaping @Sendable () async -> String?, input: StandardInput) async -> PeerOutcome {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.acceptConnections() }
            group.addTask { await self.relay(input) }
            group.addTask { await self.watch(input.interrupts) }
            let outcome = await playRoles(firstCandidates: firstCandidates)
            files.leaving()
            await advertiser.withdraw()
            group.cancelAll()
            return outcome
        }
    }

    private func playRoles(firstCandidates: @escaping @Sendable () async -> String?) async -> PeerOutcome {
        var next: MemberEnd
        switch role {
        case .host(let host): next = await hostThenMaybeMember(host)
        case .member(let member): next = await runMember(member, firstCandidates: firstCandidates, resumingAfter: nil)
        }
        while true {
            switch next {
            case .outcome(let outcome): return outcome
            case .promote(let member, let epoch): next = await hostThenMaybeMember(await promote(member, epoch: epoch))
            }
        }
    }

    /// The member's course (`MemberRun`) until it ends or this peer is promoted.
    private func runMember(_ member: MemberService, firstCandidates: @escaping @Sendable () async -> String?,
                           resumingAfter first: MemberSession.Ending?) async -> MemberEnd {
        let run = MemberRun(member: member, prober: prober, settings: settings, console: console, logger: logger,
                            listenPort: listenPort, me: me, clock: clock, isLeaving: { await self.leaving })
        switch await run.run(firstCandidates: firstCandidates, resumingAfter: first) {
        case .outcome(let outcome): return .outcome(outcome)
        case .promote(let epoch): return .promote(member, epoch: epoch)
        }
    }

    private func hostThenMaybeMember(_ host: HostService) async -> MemberEnd {
        switch await runHost(host) {
        case .left: return .outcome(.left)
        case .yielded(let member, let handover): return await runMember(member, firstCandidates: { nil }, resumingAfter: .handover(handover))
        }
    }

    // MARK: Host

    private func promote(_ member: MemberService, epoch: Int) async -> HostService {
        switching = true
        defer { settled() }
        // A member with a roster was welcomed, so the keyring holds the room's grant.
        let room = HostRoom(promoting: await member.detach(), node: me, name: settings.name,
                            local: LocalEndpoints.list(bindHost: settings.bindHost, port: listenPort), identity: identity,
                            grant: keyring.grant!, epoch: epoch, window: settings.succession.collectWindow, now: clock.now(),
                            limits: settings.limits, timings: settings.timings)
        let host = HostService(room: room, keyring: keyring, guard: addressGuard, eventLoop: eventLoop, settings: settings,
                               console: console, logger: logger)
        role = .host(host)
        logger.info("promoted to host at epoch \(epoch)")
        await advertiser.advertise(room: room.grant.roomID, host: me, epoch: epoch, port: listenPort)
        return host
    }

    private func runHost(_ host: HostService) async -> HostEnd {
        hostEnd = nil
        if leaving { await host.leave() }
        let healer = PartitionHealer(prober: prober, keyring: keyring, discovery: discovery, logger: logger,
                                     interval: max(settings.timings.heartbeat * 2, .seconds(1)),
                                     claim: { [me] in let room = await host.room; return HostClaim(epoch: room.epoch, ordinal: room.me.ordinal, node: me) },
                                     lostMembers: { await host.recentlyLost() },
                                     yield: { target, epoch in await self.yield(host, to: target, epoch: epoch) })
        await withDiscardingTaskGroup { group in
            group.addTask { await self.advertiser.supervise() }
            group.addTask { await healer.run(advertised: self.advertiser.enabled) }
            await host.runUntilStopped()
            group.cancelAll()
        }
        return hostEnd ?? .left
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
        await advertiser.withdraw()
        let session = MemberSession(continuing: room, now: clock.now(), limits: settings.limits, timings: settings.timings)
        let member = MemberService(session: session, keyring: keyring, settings: settings, console: console, logger: logger)
        role = .member(member)
        hostEnd = .yielded(member, Handover(epoch: epoch, host: target))
    }

    // MARK: Input and inbound connections

    /// Lines to the room, one at a time: the next is read only once this one is taken and the
    /// send window has room (Docs/PROTOCOL.md, "Flow control").
    private func relay(_ input: StandardInput) async {
        reading: for await event in input.events {
            switch event {
            case .line(let text) where interruptions == 0:
                if await handle(text) {
                    input.consumed()
                    continue reading
                }
                askedToLeave = true  // `/quit`
            case .line, .interrupt: break
            case .endOfInput:
                askedToLeave = true
                // A `/send` typed is offered before the run leaves, as a line typed is said (the
                // offer then ends as its sender leaves; the room sees both). A script's `/get`s
                // arrive before it leaves. Ctrl-C leaves at once (a fetch's part kept); `/quit`
                // leaves at once, as typed.
                await inputEnding.wait { sendsPending > 0 && interruptions == 0 }
                if interruptions == 0 {
                    let count = files.fetchCount
                    if count > 0 {
                        console.show(.notice("input ended: leaving once \(count == 1 ? "the download" : "the \(count) downloads") under way \(count == 1 ? "is" : "are") over (Ctrl-C leaves now)"))
                        await files.untilFetchesEnd()
                    }
                }
            }
            break reading
        }
        await leave()
    }

    private func handle(_ text: String) async -> Bool {
        let line = InputLine(parsing: text)
        if line.needsTheRoom, case .member(let member) = role { await member.untilInRoom() }
        let request = console.answer(line, code: keyring.code)
        if let command = line.fileCommand {
            if command == .cancel(nil) {
                // `/cancel` alone: the /sends typed and not offered yet, each saying so as it
                // stops; with none, the one transfer under way, if it is one.
                if sendsPending > 0 { files.cancelSends() } else { files.cancelTheOnlyTransfer() }
                return true
            }
            guard case .send = command else {
                await files.perform(command, members: await members())  // /get, /files, /cancel post nothing
                return true
            }
            // Hashing a large file or folder takes a while: the chat goes on meanwhile
            // (lines typed since go first) and the offer is posted when it is ready. One `/send`
            // at a time, as typed: offers keep their order, a pasted list of fifty does not read
            // fifty files at once, and each names its recipient from the room as it is then.
            let earlier = lastSend
            sendsPending += 1
            let ticket = files.sendTicket()
            lastSend = Task { [self] in
                await earlier?.value
                if !leaving {
                    await files.perform(command, members: await members(), ticket: ticket) { [self] offer in
                        await postOffer(offer)
                    }
                }
                sendDone()
            }
            return true
        }
        guard let request else { return true }
        return await post(request)
    }

    private func sendDone() {
        sendsPending -= 1
        inputEnding.changed()
    }

    /// A `/send`'s offer, unless this peer is leaving by the time it is ready.
    private func postOffer(_ offer: FileOffer) async {
        guard !leaving else { return }
        _ = await post(.offer(offer.text))
    }

    /// Posts a line (or an offer) to whichever role holds the room; false when this peer is
    /// leaving.
    private func post(_ request: RoomRequest) async -> Bool {
        // A role switch can begin while the line is on its way to the role's actor; the service
        // that no longer holds the room then refuses it, and it goes to the next one (a line
        // posted into a room already handed on would be lost: the fault soak found that).
        while true {
            await untilSettled()
            let outcome: LineOutcome
            let current = role
            switch current {
            case .host(let host):
                outcome = await host.handle(request)
                if outcome == .taken { await host.waitForSendWindow() }
            case .member(let member):
                outcome = await member.handle(request)
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
    /// for echoes, and so does the first once the user has left another way (end of input,
    /// `/quit`): a peer started `< /dev/null` and waiting on a frozen host ends at SIGTERM.
    private func watch(_ interrupts: AsyncStream<Void>) async {
        for await _ in interrupts {
            interruptions += 1
            files.stopWaiting()
            inputEnding.changed()
            if case .member(let member) = role { await member.interrupt(again: interruptions > 1 || askedToLeave) }
        }
    }

    /// Leaves in whatever role this peer has by then: a member that is promoted while it waits
    /// for its echoes leaves as a host, handing the room on.
    private func leave() async {
        leaving = true
        if sendsPending > 0 {
            // `/quit` or Ctrl-C while a file was still being read for its offer.
            console.show(.notice(sendsPending == 1 ? "a /send was not offered: you left before its file was read"
                                                   : "\(sendsPending) /sends were not offered: you left before their files were read"))
        }
        while true {
            await untilSettled()
            switch role {
            case .host(let host):
                hostEnd = .left
                await host.leave()
                await advertiser.withdraw()
                return
            case .member(let member):
                // A signal that came before the end of input was read still means "give up".
                if askedToLeave && interruptions > 0 { await member.interrupt(again: true) }
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
        await Transport.serveEach(listener, onFailure: { [console] error in
            console.diagnostic("levchat-peer: stopped accepting connections (\(error)); nobody can join or reach this peer now")
        }) { connection in
            switch await self.role {
            case .host(let host): await host.serve(connection, files: self.files)
            case .member(let member):
                await HostProber.answer(connection, keyring: self.keyring, guard: self.addressGuard, files: self.files,
                                        timeout: self.settings.timings.handshakeTimeout, clock: self.clock,
                                        askedByMember: { await member.wasAskedByMember() }) { await self.whereIsTheHost(member) }
            }
        }
    }

    /// The room's members as this peer knows them (a fetch finds the sender's endpoints here).
    private func members() async -> [Member] {
        switch role {
        case .host(let host): await host.room.members
        case .member(let member): await member.session.roster?.members ?? []
        }
    }

    private func whereIsTheHost(_ member: MemberService) async -> Redirect {
        let session = await member.session
        let linkedHost = await member.isLinked ? await member.hostEndpoint : nil
        return MemberAnswer.redirect(linkedHost: linkedHost, switching: switching, epoch: session.roster?.epoch, me: me,
                                     ordinal: session.you?.ordinal)
    }
}
