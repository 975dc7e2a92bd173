/// Lines out of a byte stream (standard input from a pipe or a file), keeping at most `limit + 1`
/// bytes of each: the rest of a longer line is dropped as it comes, so a stream without newlines
/// (a binary file, `/dev/zero`) costs that much memory, not all of it. A line cut this way is
/// still one line, longer than any message may be, which the room refuses with a notice. A
/// `\r` before the `\n` goes with it; bytes that are not UTF-8 become U+FFFD, as `readLine` does.
public struct LineSplitter: Sendable {
    public let limit: Int
    private var line: [UInt8] = []

    public init(limit: Int) {
        self.limit = limit
    }

    /// The lines that `bytes` ends; what comes after the last newline waits for more.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [String] {
        var lines: [String] = []
        var start = bytes.startIndex
        while let newline = bytes[start...].firstIndex(of: 0x0A) {
            keep(bytes[start..<newline])
            lines.append(take())
            start = newline + 1
        }
        keep(bytes[start...])
        return lines
    }

    /// The end of the stream: the last line, when it had no newline.
    public mutating func finish() -> String? {
        line.isEmpty ? nil : take()
    }

    private mutating func keep(_ part: Slice<UnsafeRawBufferPointer>) {
        let room = limit + 1 - line.count
        if room > 0 { line.append(contentsOf: part.prefix(room)) }
    }

    private mutating func take() -> String {
        if line.count <= limit, line.last == 0x0D { line.removeLast() }
        defer { line.removeAll(keepingCapacity: true) }
        return String(decoding: line, as: UTF8.self)
    }
}
