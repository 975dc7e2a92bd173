import LevChatCore
import LevChatTransport
import Logging

/// A member's course through the room, across host changes, until it ends or this peer is to
/// be the host: it links, and when a link ends it asks the core what next (`MemberCourse`,
/// `FirstJoin`, `Following`, `HostSearch`; Docs/MIGRATION.md) and does that.
struct MemberRun: Sendable {
    enum End {
        case outcome(PeerOutcome)
        case promote(epoch: Int)
    }

    enum Decision {
        case join([String])
        case promote(epoch: Int)
        case left(PeerOutcome)
    }

    let member: MemberService
    let prober: HostProber
    let settings: PeerSettings
    let console: Console
    let logger: Logger
    let listenPort: Int
    let me: NodeID
    let clock: PeerClock
    /// The user asked to leave (a leaving peer gives up a search nobody answers).
    let isLeaving: @Sendable () async -> Bool

    /// Joins (when the session has no room yet) and stays in the room across host changes.
    func run(firstCandidates: @escaping @Sendable () async -> String?, resumingAfter first: MemberSession.Ending?) async -> End {
        var ending: MemberSession.Ending
        if let first {
            ending = first
        } else {
            switch await joinFirst(firstCandidates: firstCandidates) {
            case .failure(let left): return .outcome(left.outcome)
            case .success(let end): ending = end
            }
        }
        while true {
            if let left = await member.leaveOutcome { return .outcome(left) }
            let result: LinkResult?
            switch MemberCourse.step(after: ending, me: me) {
            case .finish(let outcome): return .outcome(outcome)
            case .promote(let epoch): return .promote(epoch: epoch)
            case .follow(let handover): result = await follow(handover)
            case .link(let endpoints): result = await attempt(endpoints)
            case .findHost:
                logger.info("lost the host (\(ending)); finding the next one")
                switch await elect() {
                case .left(let outcome): return .outcome(outcome)
                case .promote(let epoch): return .promote(epoch: epoch)
                case .join(let endpoints): result = await attempt(endpoints)
                }
            }
            switch MemberCourse.ending(after: result) {
            case .failure(let left): return .outcome(left.outcome)
            case .success(let next): ending = next
            }
        }
    }

    /// The first way in: candidates from discovery (or `--peer`), following redirects.
    private func joinFirst(firstCandidates: @escaping @Sendable () async -> String?) async
        -> Result<MemberSession.Ending, MemberCourse.Left> {
        var join = FirstJoin(defaultName: settings.nameIsChosen ? nil : await member.session.name)
        var action = join.next()
        while true {
            let endpoint: String
            switch action {
            case .nextCandidate:
                action = join.candidate(await firstCandidates())
                continue
            case .inRoom(let ending): return .success(ending)
            case .finish(let outcome): return .failure(MemberCourse.Left(outcome: outcome))
            case .link(let next): endpoint = next
            case .rename(let name, let next):
                let taken = await member.session.name
                await member.joinAs(name)
                console.show(.notice("the name \(taken) is taken in this room; joining as \(name) (--name chooses a name, /nick changes it)"))
                endpoint = next
            case .linkAfterPause(let next):
                try? await clock.sleep(for: settings.succession.retry)
                endpoint = next
            }
            let result = await member.link(to: endpoint, listenPort: listenPort, timeout: settings.connectTimeout)
            action = join.linked(endpoint, result, hasRoom: await member.session.hasRoom) ?? join.next()
        }
    }

    /// Graceful host change: the successor is named; it may need a moment to take over.
    private func follow(_ handover: Handover) async -> LinkResult? {
        let following = Following(handover, now: clock.now().monotonic, patience: settings.timings.deadAfter,
                                  retry: settings.succession.retry)
        var action = following.first
        while true {
            switch action {
            case .done(let result): return result
            case .link(let endpoints, let pause):
                if pause > .zero { try? await clock.sleep(for: pause) }
                action = following.attempted(await attempt(endpoints), now: clock.now().monotonic)
            }
        }
    }

    /// Links to the first of these endpoints that answers; nil when none did.
    private func attempt(_ endpoints: [String]) async -> LinkResult? {
        for endpoint in endpoints {
            let result = await member.link(to: endpoint, listenPort: listenPort, timeout: settings.succession.probeTimeout)
            logger.debug("link to \(endpoint): \(result)")
            if case .failed = result { continue }
            return result
        }
        return nil
    }

    /// Finds the next host after losing one: rounds of asking every peer of the last roster at
    /// once who the host is, until the rules (`HostSearch`, in the core; Docs/MIGRATION.md) say to
    /// join, to promote this peer, or, when leaving and nobody answers, to give up.
    private func elect() async -> Decision {
        let session = await member.session
        guard let roster = session.roster, session.hasRoom else {
            return .left(.hostLost("lost the host before entering the room"))
        }
        var search = HostSearch(roster: roster, me: me, probeTimeout: settings.succession.probeTimeout)
        let started = clock.now().monotonic
        let askedBefore = await member.timesAskedByMembers
        while true {
            if let left = await member.leaveOutcome { return .left(left) }
            if await member.timesAskedByMembers > askedBefore { search.wasAskedByMember() }
            for await (peer, answer) in prober.waiting(search.probeTimeout).round(search.others, atOnce: settings.succession.probesAtOnce) {
                if search.record(answer, from: peer.node) { break }
            }
            let decision = search.decide(elapsed: clock.now().monotonic - started, stagger: settings.succession.stagger, leaving: await isLeaving())
            logger.debug("host search: \(decision)")
            switch decision {
            case .join(let endpoints): return .join(endpoints)
            case .promote(let epoch): return .promote(epoch: epoch)
            case .giveUp: return .left(await member.giveUp())
            case .retry(let firstTimeAlone):
                if firstTimeAlone { console.show(.notice("lost the host and cannot reach anyone in the room; still trying")) }
            }
            try? await clock.sleep(for: settings.succession.retry)
        }
    }
}
