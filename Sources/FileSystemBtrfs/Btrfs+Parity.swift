import DiskImage

extension Btrfs {
    /// Rebuilding a RAID5/RAID6 data stripe (`raid56_recover`): a row holds the data stripes
    /// D0..Dk-1, then P = D0 ^ ... ^ Dk-1, then (RAID6) Q = g^0·D0 ^ ... ^ g^(k-1)·Dk-1 in
    /// GF(2^8) with the polynomial 0x11d and the generator g = 2, as Linux's raid6 computes it.
    enum Parity {
        /// One way to rebuild data stripe x from the other stripes of its row.
        enum Way: Equatable {
            /// P and the other data stripes.
            case fromP
            /// Q and the other data stripes.
            case fromQ
            /// P, Q and the other data stripes but `other`, which is missing too.
            case fromPAndQ(other: Int)
        }

        /// The ways data stripe `dataIndex` can be rebuilt from the stripes present (`present`:
        /// one flag per stripe of the row, data first, then P, then Q), the cheapest first.
        static func ways(_ present: [Bool], dataIndex x: Int, raid6: Bool) -> [Way] {
            let dataStripes = present.count - (raid6 ? 2 : 1)
            guard dataStripes > 0, x < dataStripes else { return [] }
            let missing = (0..<dataStripes).filter { $0 != x && !present[$0] }
            var result: [Way] = []
            if missing.isEmpty, present[dataStripes] { result.append(.fromP) }
            if raid6, missing.isEmpty, present[dataStripes + 1] { result.append(.fromQ) }
            if raid6, missing.count == 1, present[dataStripes], present[dataStripes + 1] { result.append(.fromPAndQ(other: missing[0])) }
            return result
        }

        /// Fills `part` with data stripe `dataIndex` rebuilt `way`: `stripes` are the row's
        /// stripes (offset and device, nil when missing), each read from its offset.
        static func rebuild(_ way: Way, dataIndex x: Int, stripes: [(UInt64, any ByteSource)?], raid6: Bool,
                            into part: UnsafeMutableRawBufferPointer) throws {
            let dataStripes = stripes.count - (raid6 ? 2 : 1)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: part.count, alignment: 16)
            defer { buffer.deallocate() }
            let scratch = UnsafeRawBufferPointer(buffer)
            func read(_ index: Int) throws {
                guard let (offset, source) = stripes[index] else {
                    throw FWError.corrupt("btrfs parity rebuild needs stripe \(index), which is missing")
                }
                try source.readExactly(at: offset, into: buffer)
            }
            part.initializeMemory(as: UInt8.self, repeating: 0)
            switch way {
            case .fromP:
                // D_x = P ^ the other data stripes.
                for index in 0...dataStripes where index != x {
                    try read(index)
                    xor(scratch, into: part)
                }
            case .fromQ:
                // D_x = g^-x · (Q ^ the other data stripes times their g^i).
                for index in 0..<dataStripes where index != x {
                    try read(index)
                    multiplyAdd(scratch, by: GF256.power(index), into: part)
                }
                try read(dataStripes + 1)
                xor(scratch, into: part)
                multiply(part, by: GF256.inverse(GF256.power(x)))
            case .fromPAndQ(let y):
                // With Pxy = P ^ the data stripes but x and y, and Qxy = Q ^ those times their
                // g^i: D_x ^ D_y = Pxy and g^x·D_x ^ g^y·D_y = Qxy, so
                // D_x = (g^x ^ g^y)^-1 · (g^y·Pxy ^ Qxy).
                let pxy = UnsafeMutableRawBufferPointer.allocate(byteCount: part.count, alignment: 16)
                defer { pxy.deallocate() }
                pxy.initializeMemory(as: UInt8.self, repeating: 0)
                for index in 0..<dataStripes where index != x && index != y {
                    try read(index)
                    xor(scratch, into: pxy)
                    multiplyAdd(scratch, by: GF256.power(index), into: part)
                }
                try read(dataStripes)
                xor(scratch, into: pxy)
                try read(dataStripes + 1)
                xor(scratch, into: part)
                multiplyAdd(UnsafeRawBufferPointer(pxy), by: GF256.power(y), into: part)
                multiply(part, by: GF256.inverse(GF256.power(x) ^ GF256.power(y)))
            }
        }

        private static func xor(_ source: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer) {
            var i = 0
            while i + 8 <= target.count {
                let x = target.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ source.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                target.storeBytes(of: x, toByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < target.count {
                target[i] ^= source[i]
                i += 1
            }
        }

        /// target ^= factor · source, byte by byte.
        private static func multiplyAdd(_ source: UnsafeRawBufferPointer, by factor: UInt8, into target: UnsafeMutableRawBufferPointer) {
            let table = GF256.table(factor)
            for i in 0..<target.count { target[i] ^= table[Int(source[i])] }
        }

        /// target = factor · target, byte by byte.
        private static func multiply(_ target: UnsafeMutableRawBufferPointer, by factor: UInt8) {
            let table = GF256.table(factor)
            for i in 0..<target.count { target[i] = table[Int(target[i])] }
        }
    }

    /// GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d), Linux raid6's field.
    enum GF256 {
        /// g^i for i in 0..<510 (twice round, so a sum of two logarithms needs no reduction) and
        /// the logarithm of each non-zero byte.
        static let (exponents, logarithms): ([UInt8], [UInt8]) = {
            var exponents = [UInt8](repeating: 0, count: 510), logarithms = [UInt8](repeating: 0, count: 256)
            var x = 1
            for i in 0..<255 {
                exponents[i] = UInt8(x)
                exponents[i + 255] = UInt8(x)
                logarithms[x] = UInt8(i)
                x <<= 1
                if x & 0x100 != 0 { x ^= 0x11d }
            }
            return (exponents, logarithms)
        }()

        /// g^n.
        static func power(_ n: Int) -> UInt8 { exponents[n % 255] }

        static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
            a == 0 || b == 0 ? 0 : exponents[Int(logarithms[Int(a)]) + Int(logarithms[Int(b)])]
        }

        /// a^-1 of a non-zero a.
        static func inverse(_ a: UInt8) -> UInt8 { exponents[(255 - Int(logarithms[Int(a)])) % 255] }

        /// factor · b for every byte b.
        static func table(_ factor: UInt8) -> [UInt8] { (0..<256).map { multiply(factor, UInt8($0)) } }
    }
}
