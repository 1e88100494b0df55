//! What a macro emits when its input is wrong: the errors, and the user's item unchanged, so
//! that the errors are the only ones and rust-analyzer keeps working on the item.

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

pub(crate) fn item_with_errors(item: TokenStream, cx: Ctxt) -> TokenStream {
    let mut tokens = cx.into_compile_errors();
    tokens.extend(item);
    tokens
}
