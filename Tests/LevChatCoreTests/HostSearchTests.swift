import LevChatCore
import Testing

/// The rules for finding the next host (Docs/MIGRATION.md, "Crash and silent loss"), one by
/// one, without a network: `HostSearch` fed the answers a round of probes would give.
struct HostSearchTests {
    let alice = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: ["10.0.0.1:1"])
    let bob = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: ["10.0.0.2:2"])
    let carol = testMember(node: node(3), name: "carol", ordinal: 3, endpoints: ["10.0.0.3:3"])
    let dave = testMember(node: node(4), name: "dave", ordinal: 4, endpoints: ["10.0.0.4:4"])
    /// alice hosted epoch 3 and is gone; bob is the most senior candidate, then carol, then dave.
    var roster: RosterSnapshot { RosterSnapshot(epoch: 3, host: alice.node, members: [alice, bob, carol, dave]) }
    let stagger = Duration.milliseconds(500)

    func asMember(linkedTo endpoints: [String], _ who: Member) -> HostSearch.Answer {
        .answered(Redirect(endpoints: endpoints, role: .member, epoch: 3, node: who.node, ordinal: who.ordinal))
    }

    @Test func theMostSeniorPromotesAtOnceWithEvidence() {
        var search = HostSearch(roster: roster, me: bob.node)
        #expect(search.rank == 0)
        #expect(search.others.map(\.node) == [alice.node, carol.node, dave.node])
        _ = search.record(.silent, from: alice.node)
        _ = search.record(.answered(Redirect(endpoints: [], role: .electing, epoch: 3, node: carol.node, ordinal: 3)), from: carol.node)
        do { let decision = search.decide(elapsed: .zero, stagger: stagger, leaving: false); #expect(decision == .promote(epoch: 4)) }
    }

    /// The lost host first, then the candidates by rank, whatever order the roster lists them in.
    @Test func theLostHostAndTheSeniorsAreAskedFirst() {
        let shuffled = RosterSnapshot(epoch: 3, host: carol.node, members: [dave, carol, alice, bob])
        let search = HostSearch(roster: shuffled, me: bob.node)
        #expect(search.others.map(\.node) == [carol.node, alice.node, dave.node])
        #expect(HostSearch(roster: shuffled, me: dave.node).others.map(\.node) == [carol.node, alice.node, bob.node])
    }

    /// A busy peer is given longer to answer: doubled after each round where someone but the lost
    /// host stayed silent, up to eight times; the lost host's own silence changes nothing.
    @Test func silenceLengthensTheNextRoundsProbes() {
        var search = HostSearch(roster: roster, me: dave.node, probeTimeout: .seconds(1))
        _ = search.record(.silent, from: alice.node)
        _ = search.record(.refused, from: bob.node)
        _ = search.decide(elapsed: .zero, stagger: stagger, leaving: false)
        #expect(search.probeTimeout == .seconds(1))
        for expected in [2, 4, 8, 8, 8] {
            _ = search.record(.silent, from: bob.node)
            _ = search.decide(elapsed: .zero, stagger: stagger, leaving: false)
            #expect(search.probeTimeout == .seconds(expected))
        }
    }

    /// A silent senior may be slow, not gone (a crowd of 30 debug peers on two cores made four
    /// hosts at once so): the junior waits a second round, with twice the time, before going
    /// ahead of it. A refused senior is gone, and is not waited for.
    @Test func aJuniorGivesASilentSeniorASecondRound() {
        var search = HostSearch(roster: roster, me: carol.node, probeTimeout: .seconds(1))
        _ = search.record(.refused, from: alice.node)
        _ = search.record(.silent, from: bob.node)
        do { let decision = search.decide(elapsed: .seconds(5), stagger: stagger, leaving: false); #expect(decision == .retry(firstTimeAlone: false)) }
        #expect(search.probeTimeout == .seconds(2))
        _ = search.record(.refused, from: alice.node)
        _ = search.record(.silent, from: bob.node)
        do { let decision = search.decide(elapsed: .seconds(7), stagger: stagger, leaving: false); #expect(decision == .promote(epoch: 4)) }

        var refused = HostSearch(roster: roster, me: carol.node, probeTimeout: .seconds(1))
        _ = refused.record(.refused, from: alice.node)
        _ = refused.record(.refused, from: bob.node)
        do { let decision = refused.decide(elapsed: .seconds(5), stagger: stagger, leaving: false); #expect(decision == .promote(epoch: 4)) }
    }

    @Test func aJuniorWaitsItsRankTimesTheStagger() {
        var search = HostSearch(roster: roster, me: dave.node)
        #expect(search.rank == 2)
        for peer in [alice, bob, carol] { _ = search.record(.refused, from: peer.node) }
        do { let decision = search.decide(elapsed: .milliseconds(999), stagger: stagger, leaving: false); #expect(decision == .retry(firstTimeAlone: false)) }
        for peer in [alice, bob, carol] { _ = search.record(.refused, from: peer.node) }
        do { let decision = search.decide(elapsed: .seconds(1), stagger: stagger, leaving: false); #expect(decision == .promote(epoch: 4)) }
    }

    @Test func aLiveSeniorGoesFirst() {
        var search = HostSearch(roster: roster, me: carol.node)
        _ = search.record(.silent, from: alice.node)
        _ = search.record(.answered(Redirect(endpoints: [], role: .electing, epoch: 3, node: bob.node, ordinal: 2)), from: bob.node)
        // Even long after: bob, alive and senior, decides.
        do { let decision = search.decide(elapsed: .seconds(60), stagger: stagger, leaving: false); #expect(decision == .retry(firstTimeAlone: false)) }
    }

    @Test func aHostThatAnswersIsJoinedTheHighestEpochFirst() {
        var search = HostSearch(roster: roster, me: dave.node)
        do { let settles = search.record(.silent, from: alice.node); #expect(!settles) }
        let old = Redirect(endpoints: ["10.0.0.2:2"], role: .host, epoch: 4, node: bob.node, ordinal: 2)
        do { let settles = search.record(.answered(old), from: bob.node); #expect(settles) }  // a host settles the round
        do { let decision = search.decide(elapsed: .zero, stagger: stagger, leaving: false); #expect(decision == .join(["10.0.0.2:2"])) }

        _ = search.record(.answered(old), from: bob.node)
        _ = search.record(.answered(Redirect(endpoints: ["10.0.0.3:3"], role: .host, epoch: 5, node: carol.node, ordinal: 3)), from: carol.node)
        do { let decision = search.decide(elapsed: .zero, stagger: stagger, leaving: false); #expect(decision == .join(["10.0.0.3:3"])) }
    }

    @Test func aMemberLinkedToAnotherHostIsFollowedButNotOneLinkedToTheLostHost() {
        var search = HostSearch(roster: roster, me: bob.node)
        // carol is still linked to alice, the host we lost: no use following her there; the
        // round waits for alice's own answer.
        do { let settles = search.record(asMember(linkedTo: alice.endpoints, carol), from: carol.node); #expect(!settles) }
        do { let settles = search.record(.silent, from: alice.node); #expect(settles) }
        do { let decision = search.decide(elapsed: .zero, stagger: stagger, leaving: false); #expect(decision == .promote(epoch: 4)) }
        // dave is linked to a host we do not know: follow him there.
        do { let settles = search.record(asMember(linkedTo: ["10.0.0.9:9"], dave), from: dave.node); #expect(settles) }
        do { let decision = search.decide(elapsed: .zero, stagger: stagger, leaving: false); #expect(decision == .join(["10.0.0.9:9"])) }
    }

    @Test func withoutEvidenceNobodyPromotesAndTheUserIsToldOnce() {
        var search = HostSearch(roster: roster, me: bob.node)
        for peer in [alice, carol, dave] { _ = search.record(.silent, from: peer.node) }
        do { let decision = search.decide(elapsed: .seconds(60), stagger: stagger, leaving: false); #expect(decision == .retry(firstTimeAlone: true)) }
        for peer in [alice, carol, dave] { _ = search.record(.silent, from: peer.node) }
        do { let decision = search.decide(elapsed: .seconds(61), stagger: stagger, leaving: false); #expect(decision == .retry(firstTimeAlone: false)) }
    }

    /// dave joined just before a split and this roster does not list him yet; nobody it lists
    /// answers, but dave asking is evidence enough (found by the in-process split scenario).
    @Test func beingAskedByAMemberIsEvidence() {
        let before = RosterSnapshot(epoch: 3, host: alice.node, members: [alice, bob, carol])
        var search = HostSearch(roster: before, me: carol.node)
        for peer in [alice, bob] { _ = search.record(.silent, from: peer.node) }
        do { let decision = search.decide(elapsed: .seconds(60), stagger: stagger, leaving: false); #expect(decision == .retry(firstTimeAlone: true)) }
        search.wasAskedByMember()
        for peer in [alice, bob] { _ = search.record(.silent, from: peer.node) }
        do { let decision = search.decide(elapsed: .milliseconds(499), stagger: stagger, leaving: false); #expect(decision == .retry(firstTimeAlone: false)) }
        for peer in [alice, bob] { _ = search.record(.silent, from: peer.node) }
        do { let decision = search.decide(elapsed: .milliseconds(500), stagger: stagger, leaving: false); #expect(decision == .promote(epoch: 4)) }
    }

    @Test func aLeavingPeerThatNobodyAnswersGivesUp() {
        var search = HostSearch(roster: roster, me: bob.node)
        for peer in [alice, carol, dave] { _ = search.record(.silent, from: peer.node) }
        do { let decision = search.decide(elapsed: .zero, stagger: stagger, leaving: true); #expect(decision == .giveUp) }
        // With evidence, a leaving senior still promotes (and then hands the room on).
        _ = search.record(.refused, from: alice.node)
        do { let decision = search.decide(elapsed: .zero, stagger: stagger, leaving: true); #expect(decision == .promote(epoch: 4)) }
    }

    @Test func inARoomOfTwoTheLostHostWasTheOnlyOneToAsk() {
        let pair = RosterSnapshot(epoch: 1, host: alice.node, members: [alice, bob])
        var search = HostSearch(roster: pair, me: bob.node)
        _ = search.record(.silent, from: alice.node)
        do { let decision = search.decide(elapsed: .zero, stagger: stagger, leaving: false); #expect(decision == .promote(epoch: 2)) }
    }

    @Test func theNewEpochIsAboveEveryEpochHeard() {
        var search = HostSearch(roster: roster, me: bob.node)
        _ = search.record(.answered(Redirect(endpoints: [], role: .electing, epoch: 7, node: carol.node, ordinal: 3)), from: carol.node)
        _ = search.record(.silent, from: alice.node)
        do { let decision = search.decide(elapsed: .zero, stagger: stagger, leaving: false); #expect(decision == .promote(epoch: 8)) }
    }
}
