import DiskImage

/// JFFS2's "rtime" run-length compressor (`fs/jffs2/compr_rtime.c`, `JFFS2_COMPR_RTIME`): pairs
/// of (literal byte, repeat count); a repeat copies `count` bytes from just after the previous
/// occurrence of that literal. The decoded length is not in the stream: it is the output's size
/// (the node's `dsize`), and decoding stops when the output is full, as the kernel does.
public struct RTime: Decompressor {
    public let name = "rtime"

    public init() {}

    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        _ = try buffers(input, output)
        var positions = [Int](repeating: 0, count: 256)
        var inPos = 0
        var outPos = 0
        while outPos < output.count {
            guard inPos + 2 <= input.count else {
                throw FWError.corrupt("rtime: compressed block (\(input.count) bytes) ends after \(outPos) of \(output.count) bytes")
            }
            let value = input[inPos]
            var repeatCount = Int(input[inPos + 1])
            inPos += 2
            output[outPos] = value
            outPos += 1
            let back = positions[Int(value)]
            positions[Int(value)] = outPos
            guard repeatCount > 0 else { continue }
            guard repeatCount <= output.count - outPos else {
                throw FWError.corrupt("rtime: block decompresses to more than \(output.count) bytes")
            }
            // Byte by byte: the source may overlap the bytes being written (a run).
            var from = back
            while repeatCount > 0 {
                output[outPos] = output[from]
                outPos += 1
                from += 1
                repeatCount -= 1
            }
        }
        return outPos
    }
}
