/// Einstein summation (`torch.einsum`): `equation` names each operand's dims with letters
/// (`"bhqd,bhkd->bhqk"`); letters repeated across operands are multiplied together, letters
/// missing from the output (after `->`, or, without it, every letter used once, in
/// alphabetical order) are summed, and `...` stands for broadcast dims. Operands are combined
/// left to right, each pair as one batched matmul after the permutes and reshapes that bring
/// its shared, kept and summed letters together, so gradients come from matmul's. Dims of
/// size 1 broadcast against the others named by the same letter.
public func einsum(_ equation: String, _ operands: Tensor...) -> Tensor { einsum(equation, operands) }

/// `einsum` over an array of operands.
public func einsum(_ equation: String, _ operands: [Tensor]) -> Tensor {
    let spec = EinsumSpec(equation, operands: operands)
    var terms = zip(operands, spec.inputs).map { EinsumTerm(tensor: $0, letters: $1) }
    // Each letter's size, size-1 dims broadcasting.
    var sizes: [Character: Int] = [:]
    for term in terms {
        for (letter, size) in zip(term.letters, term.tensor.shape) where size != 1 || sizes[letter] == nil {
            check(sizes[letter] == nil || sizes[letter] == 1 || sizes[letter] == size,
                  "einsum: subscript \(spec.describe(letter)) has size \(size) in one operand and \(sizes[letter]!) in another (\(equation))")
            sizes[letter] = size
        }
    }
    var result = terms.removeFirst()
    while !terms.isEmpty {
        let next = terms.removeFirst()
        let later = Set(terms.flatMap(\.letters) + spec.output)
        result = result.contracted(with: next, keeping: later, sizes: sizes)
    }
    return result.summed(keeping: Set(spec.output)).arranged(spec.output, sizes: sizes)
}

/// A parsed einsum equation: each operand's letters and the output's, with `...` expanded to
/// letters of its own (the i-th broadcast dim from the right is the same letter in every operand).
struct EinsumSpec {
    let inputs: [[Character]], output: [Character]
    private static let ellipsisBase = 0x2460

    init(_ equation: String, operands: [Tensor]) {
        let text = equation.filter { !$0.isWhitespace }
        let sides = text.components(separatedBy: "->")
        check(sides.count <= 2, "einsum: '\(equation)' has more than one '->'")
        let terms = sides[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        check(terms.count == operands.count,
              "einsum: '\(equation)' names \(terms.count) operand\(terms.count == 1 ? "" : "s"), but \(operands.count) were given")
        var broadcast = 0
        inputs = zip(terms, operands).enumerated().map { i, pair in
            let (term, operand) = pair
            let explicit = term.replacingOccurrences(of: "...", with: "")
            check(explicit.allSatisfy { $0.isLetter && $0.isASCII }, "einsum: operand \(i)'s subscripts '\(term)' must be letters and at most one '...'")
            let hasEllipsis = explicit.count != term.count
            check(term.components(separatedBy: "...").count <= 2, "einsum: operand \(i)'s subscripts '\(term)' have more than one '...'")
            let extra = operand.rank - explicit.count
            check(hasEllipsis ? extra >= 0 : extra == 0,
                  "einsum: operand \(i) has \(operand.rank) dims but its subscripts '\(term)' name \(explicit.count)")
            check(Set(explicit).count == explicit.count,
                  "einsum: operand \(i)'s subscripts '\(term)' repeat a letter (a diagonal), which is not supported")
            broadcast = Swift.max(broadcast, hasEllipsis ? extra : 0)
            let dots = (0..<(hasEllipsis ? extra : 0)).map { EinsumSpec.ellipsisLetter(extra - 1 - $0) }
            let parts = term.components(separatedBy: "...")
            return Array(parts[0]) + dots + (parts.count > 1 ? Array(parts[1]) : [])
        }
        let dots = (0..<broadcast).map { EinsumSpec.ellipsisLetter(broadcast - 1 - $0) }
        if sides.count == 2 {
            let term = sides[1], explicit = term.replacingOccurrences(of: "...", with: "")
            check(explicit.allSatisfy { $0.isLetter && $0.isASCII } && term.components(separatedBy: "...").count <= 2,
                  "einsum: the output subscripts '\(term)' must be letters and at most one '...'")
            check(Set(explicit).count == explicit.count, "einsum: the output subscripts '\(term)' repeat a letter")
            let used = Set(inputs.flatMap { $0 })
            for letter in explicit { check(used.contains(letter), "einsum: output subscript '\(letter)' does not appear in any operand") }
            let parts = term.components(separatedBy: "...")
            output = Array(parts[0]) + (parts.count > 1 ? dots + Array(parts[1]) : [])
        } else {
            var counts: [Character: Int] = [:]
            for letter in inputs.flatMap({ $0 }) where !dots.contains(letter) { counts[letter, default: 0] += 1 }
            output = dots + counts.filter { $0.value == 1 }.keys.sorted()
        }
    }

    /// The letter standing for the `index`-th broadcast dim from the right.
    static func ellipsisLetter(_ index: Int) -> Character { Character(Unicode.Scalar(ellipsisBase + index)!) }

    /// A letter as the equation wrote it (`...` for broadcast dims).
    func describe(_ letter: Character) -> String { letter.isASCII ? "'\(letter)'" : "'...'" }
}

/// An intermediate einsum operand: a tensor and the letter of each of its dims.
struct EinsumTerm {
    var tensor: Tensor
    var letters: [Character]

    /// The letters not in `keep` summed out.
    func summed(keeping keep: Set<Character>) -> EinsumTerm {
        let dims = letters.indices.filter { !keep.contains(letters[$0]) }
        guard !dims.isEmpty else { return self }
        return EinsumTerm(tensor: tensor.sum(dims: dims), letters: letters.enumerated().filter { !dims.contains($0.offset) }.map(\.element))
    }

    /// This term's dims permuted to `order` (letters it lacks become size-1 dims), expanded to `sizes`.
    func arranged(_ order: [Character], sizes: [Character: Int]) -> Tensor {
        let present = order.filter { letters.contains($0) }
        let permuted = tensor.permute(present.map { letters.firstIndex(of: $0)! })
        let withOnes = permuted.reshape(order.map { letter in letters.firstIndex(of: letter).map { tensor.shape[$0] } ?? 1 })
        return withOnes.expand(order.map { sizes[$0]! })
    }

    /// This term times `other`, summing the letters that neither `keep` nor the other terms
    /// need: one batched matmul of [batch, own, summed] by [batch, summed, other's own].
    func contracted(with other: EinsumTerm, keeping keep: Set<Character>, sizes: [Character: Int]) -> EinsumTerm {
        let a = summed(keeping: keep.union(other.letters)), b = other.summed(keeping: keep.union(letters))
        let shared = a.letters.filter { b.letters.contains($0) }
        let batch = shared.filter { keep.contains($0) }, summedOut = shared.filter { !keep.contains($0) }
        let left = a.letters.filter { !shared.contains($0) }, right = b.letters.filter { !shared.contains($0) }
        func count(_ group: [Character]) -> Int { group.reduce(1) { $0 * sizes[$1]! } }
        let lhs = a.arranged(batch + left + summedOut, sizes: sizes).reshape([count(batch), count(left), count(summedOut)])
        let rhs = b.arranged(batch + summedOut + right, sizes: sizes).reshape([count(batch), count(summedOut), count(right)])
        let product = lhs.matmul(rhs).reshape((batch + left + right).map { sizes[$0]! })
        return EinsumTerm(tensor: product, letters: batch + left + right)
    }
}
