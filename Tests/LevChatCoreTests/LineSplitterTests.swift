import LevChatCore
import LevChatTestSupport
import Testing

/// Standard input from a pipe or a file, split into lines with a bound on each
/// (`LineSplitter`, Docs/CLI.md): for any bytes in any chunking, the lines are the input's lines
/// (a `\r` before the newline dropped), each cut to `limit + 1` bytes, and what the splitter holds
/// never exceeds that.
@Suite struct LineSplitterTests {
    /// The lines `bytes` holds, cut as the splitter cuts them: the reference, all at once.
    static func expected(_ bytes: [UInt8], limit: Int) -> [String] {
        var parts = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
        if parts.last?.isEmpty == true { parts.removeLast() }
        return parts.map { part in
            var kept = Array(part.prefix(limit + 1))
            if kept.count <= limit, kept.last == 0x0D { kept.removeLast() }
            return String(decoding: kept, as: UTF8.self)
        }
    }

    @Test(arguments: [1, 2, 3, 7, 64])
    func anyBytesInAnyChunksGiveTheSameBoundedLines(limit: Int) {
        var random = SplitMix(seed: UInt64(limit))
        let alphabet: [UInt8] = [0x0A, 0x0D, 0x61, 0x62, 0x00, 0xFF, 0xC3, 0xA9, 0x20]
        for _ in 0..<2_000 {
            let input = (0..<Int.random(in: 0...200, using: &random)).map { _ in alphabet.randomElement(using: &random)! }
            var splitter = LineSplitter(limit: limit)
            var lines: [String] = []
            var start = 0
            while start < input.count {
                let end = min(input.count, start + Int.random(in: 1...40, using: &random))
                lines += input[start..<end].withUnsafeBytes { splitter.feed($0) }
                start = end
            }
            if let last = splitter.finish() { lines.append(last) }
            #expect(lines == Self.expected(input, limit: limit), "\(input)")
            #expect(lines.allSatisfy { $0.utf8.count <= (limit + 1) * 3 })  // U+FFFD is 3 bytes
        }
    }

    /// A hundred megabytes without a newline are held as `limit + 1` bytes, then the next line
    /// comes whole.
    @Test func aHugeLineIsCutAsItComes() {
        var splitter = LineSplitter(limit: 65_536)
        let chunk = [UInt8](repeating: 0x7A, count: 1 << 20)
        for _ in 0..<100 { #expect(chunk.withUnsafeBytes { splitter.feed($0) }.isEmpty) }
        let lines = Array("\nhello\n".utf8).withUnsafeBytes { splitter.feed($0) }
        #expect(lines.count == 2 && lines[0].utf8.count == 65_537 && lines[1] == "hello")
        #expect(splitter.finish() == nil)
    }
}
