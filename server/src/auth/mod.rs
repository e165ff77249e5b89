//! Who the user is, as vouched for by what stands in front of the app (for
//! now an AWS Application Load Balancer's OIDC sign-in, `AUTH=alb-oidc`).

pub mod alb;
