import FileSystems

/// A stream of zeros: the contents of a file that could not be opened (still written, so that
/// hardlinks to it stay valid).
public final class ZeroContents: FileContents {
    public let size: UInt64
    private var left: UInt64

    public init(size: UInt64) {
        self.size = size
        self.left = size
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = Int(min(UInt64(buffer.count), left))
        if n > 0 { UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]).initializeMemory(as: UInt8.self, repeating: 0) }
        left -= UInt64(n)
        return n
    }
}
