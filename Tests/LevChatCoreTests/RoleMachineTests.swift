import LevChatCore
import Testing

/// The rules a peer follows between links (`RoleMachine.swift`; Docs/MIGRATION.md), one test a
/// rule, without a network or a clock: each is fed the events a peer would see.
struct RoleMachineTests {
    let me = node(2)
    let alice = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: ["10.0.0.1:1"])
    let carol = testMember(node: node(3), name: "carol", ordinal: 3, endpoints: ["10.0.0.3:3", "[fd00::3]:3"])
    let refusal = ErrorInfo(code: .nameTaken, message: "taken")

    // MARK: MemberCourse

    @Test func endingsThatEndTheRunEndIt() {
        #expect(MemberCourse.step(after: .roomClosed, me: me) == .finish(.roomClosed))
        #expect(MemberCourse.step(after: .refused(refusal), me: me) == .finish(.refused(refusal)))
        #expect(MemberCourse.step(after: .protocolViolation("x"), me: me) == .finish(.protocolViolation("x")))
    }

    @Test func aHandoverToThisPeerPromotesItAtTheHandoversEpoch() {
        let handover = Handover(epoch: 4, host: testMember(node: me, name: "bob", ordinal: 2, endpoints: []))
        #expect(MemberCourse.step(after: .handover(handover), me: me) == .promote(epoch: 4))
    }

    @Test func aHandoverToAnotherIsFollowed() {
        let handover = Handover(epoch: 4, host: carol)
        #expect(MemberCourse.step(after: .handover(handover), me: me) == .follow(handover))
    }

    @Test func aRedirectWithEndpointsIsLinkedAndOneWithoutFindsTheHost() {
        let there = Redirect(endpoints: ["10.0.0.3:3"], role: .member, epoch: 3)
        #expect(MemberCourse.step(after: .redirected(there), me: me) == .link(["10.0.0.3:3"]))
        let electing = Redirect(endpoints: [], role: .electing, epoch: 3)
        #expect(MemberCourse.step(after: .redirected(electing), me: me) == .findHost)
        #expect(MemberCourse.step(after: .hostLost("silence"), me: me) == .findHost)
    }

    @Test func aNextHostThatDoesNotAnswerIsALostHostAndLeavingEndsTheRun() {
        #expect(MemberCourse.ending(after: nil) == .success(.hostLost("the next host did not answer")))
        #expect(MemberCourse.ending(after: .failed(.unreachable("x"))) == .success(.hostLost("the next host did not answer")))
        #expect(MemberCourse.ending(after: .ended(.roomClosed)) == .success(.roomClosed))
        #expect(MemberCourse.ending(after: .left(.leftWithUndelivered(2))) == .failure(MemberCourse.Left(outcome: .leftWithUndelivered(2))))
    }

    // MARK: FirstJoin

    @Test func candidatesAreTriedInTurnAndTheLastFailureIsWhatTheUserHears() {
        var join = FirstJoin()
        #expect(join.next() == .nextCandidate)
        #expect(join.candidate("10.0.0.1:1") == .link("10.0.0.1:1"))
        #expect(join.linked("10.0.0.1:1", .failed(.wrongCode("no")), hasRoom: false) == nil)
        #expect(join.next() == .nextCandidate)
        #expect(join.candidate(nil) == .finish(.connectFailed(.wrongCode("no"))))
        #expect(FirstJoin().candidate(nil) == .finish(.roomNotFound))
    }

    @Test func redirectsAreFollowedDepthFirstBeforeTheNextCandidate() {
        var join = FirstJoin()
        let redirect = Redirect(endpoints: ["a:1", "b:2"], role: .member, epoch: 1)
        #expect(join.linked("m:1", .ended(.redirected(redirect)), hasRoom: false) == nil)
        #expect(join.next() == .link("a:1"))
        #expect(join.linked("a:1", .failed(.unreachable("a")), hasRoom: false) == nil)
        #expect(join.next() == .link("b:2"))
        #expect(join.linked("b:2", .failed(.unreachable("b")), hasRoom: false) == nil)
        #expect(join.next() == .nextCandidate)
    }

    @Test func aMemberFindingItsHostIsAskedAgainAfterAPause() {
        var join = FirstJoin()
        #expect(join.linked("m:1", .ended(.redirected(Redirect(endpoints: [], role: .electing, epoch: 1))), hasRoom: false) == nil)
        #expect(join.next() == .linkAfterPause("m:1"))
    }

    @Test func atMostEightRedirectsAreFollowed() {
        var join = FirstJoin()
        var hops = 0
        // Two members pointing at each other for ever.
        var endpoint = "a:1"
        while hops < 100 {
            let other = endpoint == "a:1" ? "b:2" : "a:1"
            #expect(join.linked(endpoint, .ended(.redirected(Redirect(endpoints: [other], role: .member, epoch: 1))), hasRoom: false) == nil)
            guard case .link(let next) = join.next() else { break }
            endpoint = next
            hops += 1
        }
        #expect(hops == FirstJoin.maximumRedirects)
        #expect(join.candidate(nil) == .finish(.connectFailed(.other("too many redirects"))))
    }

    /// A login name that is taken gives way to `NAME-2` … `NAME-9` at the same host; a name the
    /// user chose, and any other refusal, ends the run as before.
    @Test func aTakenLoginNameGivesWayToANumberedOne() {
        let taken = ErrorInfo(code: .nameTaken, message: "the name pi is taken in this room")
        var join = FirstJoin(defaultName: "pi")
        for n in 2...(FirstJoin.maximumRenames + 1) {
            #expect(join.linked("h:1", .ended(.refused(taken)), hasRoom: false) == .rename("pi-\(n)", thenLink: "h:1"))
        }
        #expect(join.linked("h:1", .ended(.refused(taken)), hasRoom: false) == .finish(.refused(taken)))
        var chosen = FirstJoin()
        #expect(chosen.linked("h:1", .ended(.refused(taken)), hasRoom: false) == .finish(.refused(taken)))
        let roomFull = ErrorInfo(code: .roomFull, message: "the room is full")
        var full = FirstJoin(defaultName: "pi")
        #expect(full.linked("h:1", .ended(.refused(roomFull)), hasRoom: false) == .finish(.refused(roomFull)))
        // Every numbered name is a valid one, whatever the login name's length and script.
        for base in ["pi", String(repeating: "a", count: 32), String(repeating: "é", count: 32), String(repeating: "名", count: 21),
                     String(repeating: "😀", count: 16), "bob smith", String(repeating: "x", count: 31) + "😀"] {
            for n in [2, 9, 10, 100] {
                let name = FirstJoin.numbered(base, n)
                #expect((try? NameRule.validate(name)) == name, "\(base) \(n): \(name)")
                #expect(name.hasSuffix("-\(n)") && base.hasPrefix(name.dropLast("-\(n)".count)))
            }
        }
    }

    @Test func onceInTheRoomTheMembersCourseTakesOver() {
        var join = FirstJoin()
        #expect(join.linked("h:1", .ended(.hostLost("gone")), hasRoom: true) == .inRoom(.hostLost("gone")))
    }

    @Test func endingsBeforeTheRoomEndTheRunExceptAHandover() {
        for (ending, outcome) in [(MemberSession.Ending.refused(refusal), PeerOutcome.refused(refusal)),
                                  (.protocolViolation("p"), .protocolViolation("p")), (.roomClosed, .roomClosed),
                                  (.hostLost("h"), .hostLost("h"))] {
            var join = FirstJoin()
            #expect(join.linked("h:1", .ended(ending), hasRoom: false) == .finish(outcome))
        }
        var join = FirstJoin()
        #expect(join.linked("h:1", .ended(.handover(Handover(epoch: 2, host: carol))), hasRoom: false) == nil)
        #expect(join.candidate(nil) == .finish(.connectFailed(.other("the host left while we joined"))))
        var leaving = FirstJoin()
        #expect(leaving.linked("h:1", .left(.left), hasRoom: false) == .finish(.left))
    }

    // MARK: Following

    @Test func theSuccessorIsAskedAtOnceThenAgainUntilItAnswers() {
        let following = Following(Handover(epoch: 5, host: carol), now: .seconds(10), patience: .seconds(3), retry: .milliseconds(100))
        #expect(following.first == .link(carol.endpoints, after: .zero))
        #expect(following.attempted(nil, now: .seconds(11)) == .link(carol.endpoints, after: .milliseconds(100)))
        #expect(following.attempted(.ended(.roomClosed), now: .seconds(11)) == .done(.ended(.roomClosed)))
    }

    @Test func aSuccessorStillAMemberIsReaskedSoon() {
        let following = Following(Handover(epoch: 5, host: carol), now: .seconds(10), patience: .seconds(3), retry: .milliseconds(100))
        let notYet = LinkResult.ended(.redirected(Redirect(endpoints: ["10.0.0.1:1"], role: .member, epoch: 4)))
        #expect(following.attempted(notYet, now: .seconds(11)) == .link(carol.endpoints, after: Following.reask))
        let asHost = LinkResult.ended(.redirected(Redirect(endpoints: ["10.0.0.9:9"], role: .host, epoch: 6)))
        #expect(following.attempted(asHost, now: .seconds(11)) == .done(asHost))
    }

    @Test func aSuccessorSilentForTheDeadLinkTimeIsGivenUp() {
        let following = Following(Handover(epoch: 5, host: carol), now: .seconds(10), patience: .seconds(3), retry: .milliseconds(100))
        #expect(following.attempted(nil, now: .seconds(13)) == .done(nil))
        let notYet = LinkResult.ended(.redirected(Redirect(endpoints: [], role: .electing, epoch: 4)))
        #expect(following.attempted(notYet, now: .seconds(14)) == .done(nil))
    }

    // MARK: PartitionHeal

    let room = RoomID(hex: "00112233aabbccdd")!

    @Test func onlyAnotherHostsAdvertisementOfThisRoomAtLeastThisEpochIsChallenged() {
        let other = RoomAdvertisement(room: room, host: carol.node, epoch: 3, port: 9)
        #expect(PartitionHeal.worthChallenging(other, room: room, me: me, epoch: 3))
        #expect(!PartitionHeal.worthChallenging(other, room: room, me: me, epoch: 4))
        #expect(!PartitionHeal.worthChallenging(RoomAdvertisement(room: room, host: me, epoch: 9, port: 9), room: room, me: me, epoch: 3))
        #expect(!PartitionHeal.worthChallenging(RoomAdvertisement(room: RoomID(hex: "ffeeddccbbaa9988")!, host: carol.node, epoch: 9, port: 9),
                                                room: room, me: me, epoch: 3))
    }

    /// For every pair of claims (epochs 1…3, ordinals 1…3, two nodes): a host yields exactly when
    /// the other's claim beats its own, and never to itself; the endpoint that answered comes first.
    @Test func aHostYieldsExactlyToAStrongerClaim() {
        let nodes = [me, carol.node]
        for epoch in 1...3 { for ordinal in 1...3 { for theirEpoch in 1...3 { for theirOrdinal in 1...3 { for them in nodes {
            let mine = HostClaim(epoch: epoch, ordinal: ordinal, node: me)
            let answer = Redirect(endpoints: ["x:1", "y:2"], role: .host, epoch: theirEpoch, node: them, ordinal: theirOrdinal)
            let step = PartitionHeal.step(after: answer, at: "y:2", mine: mine)
            let stronger = them != me && HostClaim(epoch: theirEpoch, ordinal: theirOrdinal, node: them).beats(mine)
            if stronger {
                #expect(step == .yield(to: Member(node: them, name: "", ordinal: theirOrdinal, endpoints: ["y:2", "x:1"]), epoch: theirEpoch))
            } else {
                #expect(step == .nothing)
            }
        } } } } }
    }

    @Test func anAnswerWithoutAProvenClaimMovesNobody() {
        let mine = HostClaim(epoch: 1, ordinal: 1, node: me)
        #expect(PartitionHeal.step(after: Redirect(endpoints: ["x:1"], role: .host, epoch: nil, node: carol.node, ordinal: 1), at: "x:1", mine: mine) == .nothing)
        #expect(PartitionHeal.step(after: Redirect(endpoints: ["x:1"], role: .host, epoch: 9), at: "x:1", mine: mine) == .nothing)
    }

    @Test func aLostMemberWithAnotherHostLeadsThereOnce() {
        let mine = HostClaim(epoch: 1, ordinal: 1, node: me)
        let member = Redirect(endpoints: ["h:1", "h:2", "h:3"], role: .member, epoch: 2, node: carol.node, ordinal: 3)
        #expect(PartitionHeal.step(after: member, at: "c:1", mine: mine) == .askHost(["h:1", "h:2"]))
        // A host a member pointed at that answers as a member is not followed further.
        #expect(PartitionHeal.step(after: member, at: "h:1", mine: mine, viaMember: true) == .nothing)
        #expect(PartitionHeal.step(after: Redirect(endpoints: [], role: .electing, epoch: 2), at: "c:1", mine: mine) == .nothing)
    }

    // MARK: MemberAnswer

    @Test func aMemberPointsAtItsLiveHostOnlyWhenLinkedAndNotSwitching() {
        let linked = MemberAnswer.redirect(linkedHost: "10.0.0.1:1", switching: false, epoch: 3, me: me, ordinal: 2)
        #expect(linked == Redirect(endpoints: ["10.0.0.1:1"], role: .member, epoch: 3, node: me, ordinal: 2))
        for (host, switching) in [(nil, false), ("10.0.0.1:1", true), (nil, true)] as [(String?, Bool)] {
            #expect(MemberAnswer.redirect(linkedHost: host, switching: switching, epoch: 3, me: me, ordinal: 2)
                    == Redirect(endpoints: [], role: .electing, epoch: 3, node: me, ordinal: 2))
        }
    }
}
