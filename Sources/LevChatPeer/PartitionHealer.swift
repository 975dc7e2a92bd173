import LevChatCore
import LevChatTransport
import Logging

/// Partition heal for a host (Docs/MIGRATION.md): it looks for another host of its room in two
/// ways and hands its members over when `PartitionHeal` says that host's claim is stronger.
///
/// - Advertisements of the same room (mDNS) are challenged with a probe, which holds the room
///   secret, so a stranger's advertisement never moves anyone.
/// - Members this host lost may be with another host now (a split): they are asked every few
///   seconds who their host is, without waiting on mDNS timing.
struct PartitionHealer: Sendable {
    let prober: HostProber
    let keyring: RoomKeyring
    let discovery: any RoomDiscovery
    let logger: Logger
    /// How often lost members are asked.
    let interval: Duration
    /// This host's claim now.
    let claim: @Sendable () async -> HostClaim
    let lostMembers: @Sendable () async -> [Member]
    /// Yields to that host at that epoch (the peer checks it still may).
    let yield: @Sendable (Member, Int) async -> Void

    func run(advertised: Bool) async {
        await withDiscardingTaskGroup { group in
            if advertised { group.addTask { await watchAdvertisements() } }
            group.addTask { await askLostMembers() }
        }
    }

    /// Browses for as long as the host runs. A browse through avahi-daemon stops for good when the
    /// daemon goes away (`.failed`), so it is started again after a pause; if the daemon is still
    /// gone then, `FallbackDiscovery` browses with levchat's own mDNS, as a peer starting then would.
    private func watchAdvertisements() async {
        while !Task.isCancelled {
            if let events = try? await discovery.browse() {
                await challengeAdvertisements(events)
                if Task.isCancelled { return }
                logger.info("heal: browsing stopped (avahi-daemon went away); browsing again in \(PartitionHeal.browseAgainAfter)")
            }
            try? await prober.network.clock.sleep(for: PartitionHeal.browseAgainAfter)
        }
    }

    /// Challenges each advertisement of this room worth it, until the browse fails or ends.
    private func challengeAdvertisements(_ events: AsyncStream<DiscoveryEvent>) async {
        await withDiscardingTaskGroup { group in
            for await event in events {
                if case .failed = event { return }
                guard case .found(let service) = event, let grant = keyring.grant,
                      let advertisement = RoomAdvertisement(instanceName: service.instanceName, port: service.port, txt: service.txt),
                      PartitionHeal.worthChallenging(advertisement, room: grant.roomID, me: prober.me, epoch: await claim().epoch)
                else { continue }
                let endpoint = Endpoint.format(host: service.address, port: service.port)
                group.addTask { await challenge(endpoint) }
            }
        }
    }

    private func challenge(_ endpoint: String) async {
        for _ in 0..<PartitionHeal.challengeAttempts where !Task.isCancelled {
            if case .answered(let answer) = await prober.probe(endpoint), answer.role == .host {
                await act(on: answer, at: endpoint, viaMember: false)
                return
            }
            try? await prober.network.clock.sleep(for: PartitionHeal.challengePause)
        }
    }

    /// A peer that does not answer in time gets longer the next time (doubled, up to eight
    /// times the prober's own), and any answer brings it back: on a machine too busy to finish a
    /// handshake within a second, two hosts of one room still find each other.
    private func askLostMembers() async {
        var timeout = prober.timeout
        while !Task.isCancelled {
            try? await prober.network.clock.sleep(for: interval)
            var hostsAsked: Set<[String]> = []
            for member in await lostMembers() where !Task.isCancelled {
                // The first of its endpoints that answers.
                for endpoint in member.endpoints.prefix(PartitionHeal.endpointsAsked) {
                    let answer = await prober.waiting(timeout).probe(endpoint)
                    if case .silent = answer { timeout = min(timeout * 2, prober.timeout * 8) }
                    guard case .answered(let redirect) = answer else { continue }
                    timeout = prober.timeout
                    // Members of the same other host name it alike: it is asked once a pass.
                    if hostsAsked.insert(redirect.endpoints).inserted || redirect.role == .host {
                        await act(on: redirect, at: endpoint, viaMember: false)
                    }
                    break
                }
            }
        }
    }

    private func act(on answer: Redirect, at endpoint: String, viaMember: Bool) async {
        let step = PartitionHeal.step(after: answer, at: endpoint, mine: await claim(), viaMember: viaMember)
        logger.debug("heal: \(endpoint) answered \(answer.role.map { "\($0)" } ?? "nothing") at epoch \(answer.epoch ?? 0): \(step)")
        switch step {
        case .yield(let target, let epoch):
            logger.info("heal: \(endpoint) hosts this room with a stronger claim (epoch \(epoch)); handing the members over")
            await yield(target, epoch)
        case .askHost(let endpoints):
            for hostEndpoint in endpoints {
                if case .answered(let hostAnswer) = await prober.probe(hostEndpoint), hostAnswer.role == .host {
                    await act(on: hostAnswer, at: hostEndpoint, viaMember: true)
                    return
                }
            }
        case .nothing:
            break
        }
    }
}
