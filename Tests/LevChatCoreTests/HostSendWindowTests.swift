import LevChatCore
import Testing

/// The host's own send window (Docs/PROTOCOL.md, "Flow control"), rule by rule, on a fake clock.
struct HostSendWindowTests {
    let a = ConnectionID(1), b = ConnectionID(2), c = ConnectionID(3)

    func window(count: Int = 3, bytes: Int = 1000) -> HostSendWindow {
        HostSendWindow(countLimit: count, byteLimit: bytes, stall: .seconds(8))
    }

    @Test func fullAtTheCountUntilEveryMemberHasTheOldest() {
        var window = window()
        let lines = (0..<3).map { window.posted(bytes: 10, to: [a, b], now: .seconds($0)) }
        #expect(window.isFull && window.count == 3 && window.bytesInFlight == 30)
        let partly = window.written(lines[0], to: a)
        #expect(!partly)  // nothing left the window
        #expect(window.isFull)  // b has not got it yet
        let wholly = window.written(lines[0], to: b)
        #expect(wholly)
        #expect(!window.isFull && window.count == 2 && window.bytesInFlight == 20)
    }

    @Test func fullAtTheBytes() {
        var window = window(count: 100, bytes: 1000)
        _ = window.posted(bytes: 999, to: [a], now: .zero)
        #expect(!window.isFull)
        let second = window.posted(bytes: 1, to: [a], now: .zero)
        #expect(window.isFull)
        window.written(second, to: a)
        #expect(!window.isFull && window.bytesInFlight == 999)
    }

    @Test func aLineToNobodyTakesNoRoom() {
        var window = window(count: 1)
        _ = window.posted(bytes: 500, to: [], now: .zero)
        #expect(!window.isFull && window.count == 0 && window.stallDeadline == nil)
    }

    @Test func aMemberGoneIsNotWaitedFor() {
        var window = window(count: 2)
        for second in 0..<2 { _ = window.posted(bytes: 10, to: [a, b], now: .seconds(second)) }
        #expect(window.isFull)
        window.closed(b)
        #expect(window.isFull)  // a still holds both
        window.closed(a)
        #expect(!window.isFull && window.count == 0 && window.bytesInFlight == 0)
    }

    /// Only a member holding every line of the window, and only once the oldest has waited the
    /// stall time, is named; one a line behind is left alone.
    @Test func onlyAMemberThatTookNoneStallsTheWindow() {
        var window = window()
        let first = window.posted(bytes: 10, to: [a, b, c], now: .seconds(1))
        let second = window.posted(bytes: 10, to: [a, b, c], now: .seconds(2))
        _ = window.posted(bytes: 10, to: [a, b, c], now: .seconds(3))
        window.written(first, to: a)
        window.written(second, to: a)
        window.written(first, to: b)
        #expect(window.stallDeadline == .seconds(9))
        #expect(window.stalled(now: .milliseconds(8999)).isEmpty)
        #expect(window.stalled(now: .seconds(9)) == [c])
        window.closed(c)
        // Everyone has the first line now: the window moves on to the second, which only b
        // lacks; b lacks the third too, so b holds every line left, and stalls from 2 s + 8 s.
        #expect(window.count == 2 && window.stallDeadline == .seconds(10))
        #expect(window.stalled(now: .milliseconds(9999)).isEmpty)
        #expect(window.stalled(now: .seconds(10)) == [b])
    }

    /// Whatever the order of writes and departures, the window holds exactly the lines some
    /// recipient still lacks, and their bytes.
    @Test(arguments: 0..<50)
    func theWindowIsExactlyWhatIsUnwritten(seed: Int) {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        var window = HostSendWindow(countLimit: 1000, byteLimit: 1 << 30, stall: .seconds(1))
        let members = (1...4).map { ConnectionID(UInt64($0)) }
        var model: [(HostSendWindow.LineID, Int, Set<ConnectionID>)] = []
        for step in 0..<200 {
            switch next(3) {
            case 0:
                let to = Set(members.filter { _ in next(2) == 0 })
                let size = next(100) + 1
                let line = window.posted(bytes: size, to: to, now: .seconds(step))
                if !to.isEmpty { model.append((line, size, to)) }
            case 1 where !model.isEmpty:
                let index = next(model.count)
                let holding = model[index].2.sorted { $0.raw < $1.raw }
                let member = holding[next(holding.count)]
                let moved = window.written(model[index].0, to: member)
                model[index].2.remove(member)
                #expect(moved == model[index].2.isEmpty)
            default:
                let member = members[next(members.count)]
                let moved = window.closed(member)
                for index in model.indices { model[index].2.remove(member) }
                #expect(moved == model.contains { $0.2.isEmpty })
            }
            model.removeAll { $0.2.isEmpty }
            #expect(window.count == model.count)
            #expect(window.bytesInFlight == model.reduce(0) { $0 + $1.1 })
        }
    }
}
